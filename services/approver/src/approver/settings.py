"""Approver settings (``APPROVER_*``).

The approval policy is configuration too (``APPROVER_POLICY__*``); its shape belongs to the
domain (:mod:`approver.domain.requirements`), which this nests.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from shared.settings import NESTED_BLOCK, Environment, HttpSettings, ServiceSettings, service_config

from .domain.requirements import PolicySettings

__all__ = ["ApproverSettings", "ExecutorSettings", "RelaySettings"]


class ExecutorSettings(BaseModel):
    model_config = NESTED_BLOCK

    poll_interval_s: float = Field(default=1.0, gt=0, description="When no wake-up arrives.")
    max_attempts: int = Field(
        default=5, ge=1, description="Failed runs (errors, timeouts) before an action fails."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Where `python -m approver.worker` serves /metrics."
    )
    metrics_port: int = Field(
        default=8006,
        ge=0,
        le=65535,
        description="Port of the worker's /metrics and /healthz (0: any free port).",
    )


class RelaySettings(BaseModel):
    model_config = NESTED_BLOCK

    poll_interval_s: float = Field(default=1.0, gt=0, description="When no wake-up arrives.")
    batch_size: int = Field(default=100, ge=1, le=1000)
    scan_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest time a recovery scan of a topic may take."
    )
    retention_hours: float = Field(
        default=168.0, gt=0, description="Published outbox rows are kept this long."
    )


class ApproverSettings(ServiceSettings):
    model_config = service_config("APPROVER_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8004))
    group_id: str = "approver"
    background: bool = Field(
        default=True,
        description="Run the executor, outbox relay and sweeper in this process. Off where"
        " `python -m approver.worker` runs them as a service of its own (compose, make up).",
    )
    sweep_interval_s: float = Field(
        default=30.0, gt=0, description="How often stale drafts are expired."
    )
    policy: PolicySettings = Field(default_factory=PolicySettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    failpoints: str = Field(
        default="",
        description="Test only: `name:countdown[,...]`; the process SIGKILLs itself when the"
        " named step is reached for the countdown-th time (see approver.testing.failpoints).",
    )

    @model_validator(mode="after")
    def _no_failpoints_in_production(self) -> Self:
        if self.failpoints and self.environment is Environment.PRODUCTION:
            raise ValueError("APPROVER_FAILPOINTS is for fault tests, never production")
        return self
