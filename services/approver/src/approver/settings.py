"""Approver settings (``APPROVER_*``), including the approval policy.

The policy is configuration, not code: ``APPROVER_POLICY__RULES`` takes a JSON list of rules
in the shape of :class:`ToolRule`. The defaults follow the refund runbook
(``deploy/knowledge-base/harborpine/hp-l1-refund-processing.md``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.contracts import RiskLevel
from shared.principal import StaffLevel
from shared.settings import Environment, HttpSettings, ServiceSettings

__all__ = [
    "AmountBand",
    "ApproverSettings",
    "ExecutorSettings",
    "PolicySettings",
    "RelaySettings",
    "Requirement",
    "ToolRule",
]

_Frozen = ConfigDict(extra="forbid", frozen=True)


class Requirement(BaseModel):
    """``count`` approvals, each by a different person of at least ``level``."""

    model_config = _Frozen

    level: StaffLevel = Field(description="Minimum staff level of each approver.")
    count: int = Field(default=1, ge=1, le=5, description="Distinct approvers needed.")

    @model_validator(mode="after")
    def _staff_only(self) -> Self:
        if self.level is StaffLevel.NONE:
            raise ValueError("approvers are staff: level must be L1, L2 or manager")
        return self

    def covers(self, other: Requirement) -> bool:
        """True if meeting this requirement also meets ``other``."""
        return self.level.at_least(other.level) and self.count >= other.count


class AmountBand(BaseModel):
    model_config = _Frozen

    name: str = Field(description="Rule name recorded on the draft, the decision and the audit.")
    up_to_eur: Decimal | None = Field(
        description="Inclusive upper bound of the cumulative amount in EUR; null: no bound."
    )
    requires: Requirement


class ToolRule(BaseModel):
    """Who approves one tool: a fixed requirement, or bands by cumulative amount."""

    model_config = _Frozen

    tool: str
    name: str = Field(default="", description="Rule name when the requirement is fixed.")
    requires: Requirement | None = None
    bands: tuple[AmountBand, ...] = Field(
        default=(), description="Ascending by up_to_eur; the last band should be unbounded."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.requires is None) == (not self.bands):
            raise ValueError(f"rule for {self.tool}: give either `requires` or `bands`")
        if self.requires is not None and not self.name:
            raise ValueError(f"rule for {self.tool}: a fixed requirement needs a name")
        bounds = [b.up_to_eur for b in self.bands]
        if None in bounds[:-1] or bounds != sorted(bounds, key=lambda b: b or Decimal("Inf")):
            raise ValueError(f"rule for {self.tool}: bands must ascend, only the last unbounded")
        return self


def _l(level: StaffLevel, count: int = 1) -> Requirement:
    return Requirement(level=level, count=count)


_DEFAULT_RULES = (
    ToolRule(
        tool="issue_refund",
        bands=(
            AmountBand(
                name="refund-up-to-100-eur", up_to_eur=Decimal(100), requires=_l(StaffLevel.L1)
            ),
            AmountBand(
                name="refund-up-to-500-eur", up_to_eur=Decimal(500), requires=_l(StaffLevel.L2)
            ),
            AmountBand(
                name="refund-up-to-2000-eur", up_to_eur=Decimal(2000), requires=_l(StaffLevel.L2, 2)
            ),
            AmountBand(
                name="refund-over-2000-eur", up_to_eur=None, requires=_l(StaffLevel.MANAGER)
            ),
        ),
    ),
    ToolRule(tool="reset_password", name="password-reset", requires=_l(StaffLevel.MANAGER)),
    ToolRule(tool="create_ticket", name="ticket", requires=_l(StaffLevel.L1)),
    ToolRule(tool="escalate", name="escalation", requires=_l(StaffLevel.L1)),
)


class PolicySettings(BaseModel):
    model_config = _Frozen

    rules: tuple[ToolRule, ...] = _DEFAULT_RULES
    by_risk: dict[RiskLevel, Requirement] = Field(
        default_factory=lambda: {
            RiskLevel.WRITE: _l(StaffLevel.L2),
            RiskLevel.CRITICAL: _l(StaffLevel.MANAGER),
        },
        description="For tools without a rule. Critical tools never need less than a manager.",
    )
    fx_to_eur: dict[str, Decimal] = Field(
        default_factory=lambda: {"EUR": Decimal(1)},
        description="EUR per unit of each currency for the limit check; other currencies take"
        " the highest band.",
    )
    approver_roles: tuple[str, ...] = Field(
        default=("support", "finance", "management"),
        description="An approver holds at least one of these roles.",
    )

    @model_validator(mode="after")
    def _unique_tools(self) -> Self:
        tools = [r.tool for r in self.rules]
        if len(tools) != len(set(tools)):
            raise ValueError("one rule per tool")
        return self


class ExecutorSettings(BaseModel):
    model_config = _Frozen

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
    model_config = _Frozen

    poll_interval_s: float = Field(default=1.0, gt=0, description="When no wake-up arrives.")
    batch_size: int = Field(default=100, ge=1, le=1000)
    scan_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest time a recovery scan of a topic may take."
    )
    retention_hours: float = Field(
        default=168.0, gt=0, description="Published outbox rows are kept this long."
    )


class ApproverSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="APPROVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

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
        " named step is reached for the countdown-th time (see approver.failpoints).",
    )

    @model_validator(mode="after")
    def _no_failpoints_in_production(self) -> Self:
        if self.failpoints and self.environment is Environment.PRODUCTION:
            raise ValueError("APPROVER_FAILPOINTS is for fault tests, never production")
        return self
