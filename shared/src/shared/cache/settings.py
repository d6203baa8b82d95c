"""Cache settings (``CACHE_`` prefix; ``REDIS_URL`` picks the shared store), read by every
service that caches. A malformed value fails at start-up with the field's name, like every
other settings block."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CacheSettings"]

_DAY_S = 24 * 3600.0


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CACHE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    enabled: bool = Field(
        default=True,
        description="Master switch: off, every lookup misses and nothing is stored (benchmarks).",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "CACHE_REDIS_URL"),
        description="redis://host:port/db: caches shared by every replica. None: in process.",
    )
    namespace: str = Field(
        default="platform",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Prefix of every key (isolates stacks sharing one Redis).",
    )
    timeout_s: float = Field(
        default=0.25, gt=0, le=5, description="Per Redis call; slower counts as a miss."
    )
    max_entries: int = Field(default=10_000, ge=1, description="Per cache, in-process store.")
    embedding_ttl_s: float = Field(default=7 * _DAY_S, gt=0, description="Query embeddings.")
    retrieval_ttl_s: float = Field(default=3600.0, gt=0, description="Retrieval results.")
    answer_ttl_s: float = Field(default=_DAY_S, gt=0, description="Safe (cited) answers.")
    answers: bool = Field(default=True, description="Serve safe answers from the cache.")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url
