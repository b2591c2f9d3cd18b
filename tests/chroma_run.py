"""A real ``chroma run`` on 127.0.0.1, for the tests and the benchmarks alike.

No pytest here: ``bench/`` imports it too (``bench/common.py`` puts this folder on
``sys.path``). Start-up failures raise ``RuntimeError`` with the tail of the server's log.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChromaRun:
    """``chroma run --path DATA`` on 127.0.0.1 and a port chosen once, so that it can be
    stopped and started again at the same address. Output is appended to ``log``."""

    def __init__(self, data: Path, log: Path, *, startup_timeout: float = 120.0) -> None:
        self.data = data
        self.log = log
        self.host = "127.0.0.1"
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: psutil.Popen | None = None

    def start(self) -> ChromaRun:
        chroma = Path(sys.executable).with_name("chroma")
        if not chroma.exists():
            raise RuntimeError(
                f"`chroma` not found beside {sys.executable}: install the project "
                "(`pip install -e .`)"
            )
        cmd = [str(chroma), "run", "--path", str(self.data), "--host", self.host]
        cmd += ["--port", str(self.port)]
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = psutil.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.port}/api/v2/heartbeat"
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"`chroma run` did not start:\n{tail}")
            time.sleep(0.1)

    def rss(self) -> int:
        """The server's resident memory in bytes (0 when it is not running)."""
        if self.proc is None:
            return 0
        with contextlib.suppress(psutil.Error):
            return self.proc.memory_info().rss
        return 0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(15)

    def __enter__(self) -> ChromaRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
