"""Pytest fixtures for the protocol fakes; wire them in tests/conftest.py with

    from fakes.fixtures import fake_openai, fake_telegram  # noqa: F401

Each test gets its own server on a fresh loopback port, stopped (port freed) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_server import FakeOpenAI
from .telegram_server import FakeTelegram


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake
