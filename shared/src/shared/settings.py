"""Settings shared by every service.

Each block reads its own environment prefix (``KAFKA_``, ``DATABASE_``, ``TELEMETRY_``,
``AUTH_``) so one environment configures the whole stack, and a service can still override a
block under its own prefix (``RETRIEVER_KAFKA__FETCH_MAX_WAIT_MS=20``). Settings are built only
in composition roots and test fixtures, never at import time.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.cache.settings import CacheSettings
from shared.pricing import PricingSettings

__all__ = [
    "DEV_JWT_SECRET",
    "NESTED_BLOCK",
    "AuthSettings",
    "DatabaseSettings",
    "Environment",
    "HttpSettings",
    "KafkaSettings",
    "SagaSettings",
    "ServiceSettings",
    "TelemetrySettings",
    "service_config",
]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


#: The config of a block nested inside a service's settings (read through the parent's env
#: prefix): unknown keys are an error and nothing changes after start-up.
NESTED_BLOCK = ConfigDict(extra="forbid", frozen=True)


def service_config(env_prefix: str) -> SettingsConfigDict:
    """The config of one service's settings class: ``model_config = service_config("AGENT_")``.

    Every service reads its own fields under its prefix, nested blocks through ``__``
    (``AGENT_MODEL__MIN_RELEVANCE``), refuses unknown keys and freezes what it read.
    """
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )


def _block(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix, env_nested_delimiter="__", extra="forbid", frozen=True
    )


class KafkaSettings(BaseSettings):
    """How to reach the broker, and the client tunings that differ between brokers.

    The defaults suit real Apache Kafka. The local Tansu broker needs short fetch waits and
    group timeouts and no idempotent producer; `deploy/local.env` sets those, not the code.
    """

    model_config = _block("KAFKA_")

    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    topic_prefix: str = Field(
        default="", description="Prepended to every topic name (isolates test runs)."
    )
    partitions: int = Field(
        default=6,
        ge=1,
        description="Partitions when creating topics: the most consumers a group can use.",
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replicas per partition when creating topics (3 in compose)."
    )
    min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Topic min.insync.replicas when creating topics; with acks=all a write then"
        " survives the loss of replication_factor - min_insync_replicas brokers. None: the"
        " broker's default (Tansu has no replicas).",
    )
    enable_idempotence: bool = Field(
        default=True, description="Idempotent producer; must be off on Tansu."
    )
    acks: Literal["all", 1, 0] = Field(
        default="all", description="all: a send is confirmed once every in-sync replica has it."
    )
    linger_ms: int = Field(default=0, ge=0)
    fetch_max_wait_ms: int = Field(
        default=500, ge=0, description="Tansu answers a waiting fetch late: use 10-20 locally."
    )
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(default=100, ge=1)
    request_timeout_ms: int = Field(default=40_000, ge=1000)

    @model_validator(mode="after")
    def _durable_writes_are_consistent(self) -> Self:
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError(
                "KAFKA_MIN_INSYNC_REPLICAS cannot exceed KAFKA_REPLICATION_FACTOR: every"
                " acks=all write would be refused"
            )
        if self.enable_idempotence and self.acks != "all":
            # The Kafka client refuses this combination at start-up; say which settings clash.
            raise ValueError("KAFKA_ENABLE_IDEMPOTENCE needs KAFKA_ACKS=all")
        return self

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class DatabaseSettings(BaseSettings):
    """PostgreSQL, the system of record (``DATABASE_URL``)."""

    model_config = _block("DATABASE_")

    url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/support"),
        description="libpq connection URL.",
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)

    @property
    def dsn(self) -> str:
        return self.url.get_secret_value()


class TelemetrySettings(BaseSettings):
    model_config = _block("TELEMETRY_")

    exporter: Literal["otlp", "console", "none"] = Field(
        default="none", description="Where spans go. otlp uses OTEL_EXPORTER_OTLP_ENDPOINT."
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318."
    )
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    log_level: str = Field(default="INFO")
    log_format: Literal["json", "text"] = Field(
        default="text",
        description="json: one object a line with service, request_id, tenant_id, trace_id and"
        " span_id (the image and compose set it); text: one readable line with the ids appended"
        " (a terminal, the local stack).",
    )


class HttpSettings(BaseModel):
    """Per service (``<SERVICE>_HTTP__PORT``): each service listens on its own port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)


DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"  # noqa: S105 - refused outside development


class AuthSettings(BaseSettings):
    """Token verification. HS256 with a shared secret, or RS256/ES256 with a public key."""

    model_config = _block("AUTH_")

    jwt_secret: SecretStr | None = Field(
        default=SecretStr(DEV_JWT_SECRET), description="HMAC key (HS256)."
    )
    jwt_public_key: str | None = Field(default=None, description="PEM public key (RS/ES256).")
    jwt_private_key: SecretStr | None = Field(
        default=None, description="PEM private key, only where tokens are minted."
    )
    algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    issuer: str = "support-platform"
    audience: str = "support-platform"
    leeway_s: int = Field(default=10, ge=0)
    max_ttl_s: int = Field(
        default=24 * 3600, ge=60, description="Tokens living longer are refused."
    )


class SagaSettings(BaseSettings):
    """How long a saga may take before it is given an end (``SAGA_``), read by every service.

    The gateway marks a request ``timed_out`` once its deadline passes; the approver refuses
    to admit an action whose request is already past the answer deadline (so nothing is
    executed for a request its caller was told had timed out) and expires pending approvals
    at ``approval_expiry_s``. One block, so the two sides cannot disagree.
    """

    model_config = _block("SAGA_")

    answer_deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="From accepted to answered, refused or pending approval.",
    )
    approval_expiry_s: float = Field(
        default=72 * 3600.0, gt=0, description="A pending approval expires after this."
    )
    settle_grace_s: float = Field(
        default=600.0,
        gt=0,
        description="Backstop after the approval expiry (or an approval's execution) before"
        " the gateway gives up waiting for the approver's outcome.",
    )
    sweep_interval_s: float = Field(
        default=2.0, gt=0, description="How often deadlines are checked."
    )


class ServiceSettings(BaseSettings):
    """Base of each service's settings: the shared blocks plus the service's own fields."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="forbid", frozen=True, populate_by_name=True
    )

    environment: Environment = Field(
        default=Environment.DEVELOPMENT,
        validation_alias="PLATFORM_ENV",
        description="development, test or production (production refuses dev defaults).",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    saga: SagaSettings = Field(default_factory=SagaSettings)
    # Read by every service so a malformed table or cache setting fails every one at start-up.
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    caches: CacheSettings = Field(default_factory=CacheSettings)

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Self:
        if self.environment is Environment.PRODUCTION:
            secret = self.auth.jwt_secret
            if self.auth.algorithm == "HS256" and (
                secret is None or secret.get_secret_value() == DEV_JWT_SECRET
            ):
                raise ValueError("AUTH_JWT_SECRET must be set to a real secret in production")
            if not self.kafka.enable_idempotence:
                raise ValueError("KAFKA_ENABLE_IDEMPOTENCE must stay on against real Kafka")
        return self
