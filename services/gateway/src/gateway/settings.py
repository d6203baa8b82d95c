from __future__ import annotations

from pydantic import Field

from shared.settings import HttpSettings, ServiceSettings, service_config


class GatewaySettings(ServiceSettings):
    model_config = service_config("GATEWAY_")

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
