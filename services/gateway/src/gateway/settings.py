from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8001))
    group_id: str = Field(default="gateway", description="Consumer group of the status projection.")
    max_wait_s: float = Field(default=30.0, gt=0, description="Upper bound of ?wait=.")
    sse_max_s: float = Field(
        default=120.0, gt=0, description="Longest a server-sent-events stream stays open."
    )
    publish_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=5,
        description="Longest a POST waits for the broker to take its request (and audit step)"
        " before answering 503 with Retry-After.",
    )
