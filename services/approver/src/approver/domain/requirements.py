"""What an action needs before it runs, and the configured rules that set it.

A :class:`Requirement` is *count approvals by different people of at least level*. The rules
that choose it per tool (fixed, or banded by the cumulative amount in EUR) are configuration,
not code: :class:`PolicySettings` is the shape of ``APPROVER_POLICY__*`` (``RULES`` takes a
JSON list of :class:`ToolRule`), nested in :class:`~approver.settings.ApproverSettings`. They
live in the domain because an approval keeps the requirement it was given, and the rules that
decide it are the domain's, whatever reads them from the environment. The defaults follow the
refund runbook (``deploy/knowledge-base/harborpine/hp-l1-refund-processing.md``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from pydantic import BaseModel, Field, model_validator

from shared.contracts import RiskLevel
from shared.principal import StaffLevel
from shared.settings import NESTED_BLOCK

__all__ = ["AmountBand", "PolicySettings", "Requirement", "ToolRule"]


class Requirement(BaseModel):
    """``count`` approvals, each by a different person of at least ``level``."""

    model_config = NESTED_BLOCK

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
    model_config = NESTED_BLOCK

    name: str = Field(description="Rule name recorded on the draft, the decision and the audit.")
    up_to_eur: Decimal | None = Field(
        description="Inclusive upper bound of the cumulative amount in EUR; null: no bound."
    )
    requires: Requirement


class ToolRule(BaseModel):
    """Who approves one tool: a fixed requirement, or bands by cumulative amount."""

    model_config = NESTED_BLOCK

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
    model_config = NESTED_BLOCK

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
