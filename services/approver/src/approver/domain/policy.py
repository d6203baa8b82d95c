"""The approval policy: how many approvals, at which staff level, an action needs.

Pure functions over :class:`~approver.domain.requirements.PolicySettings`. The requirement is
fixed when the draft arrives and stored with it, so the people deciding and the audit see the
rule that applied, even if the configuration changes later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.contracts import RiskLevel
from shared.principal import Principal, StaffLevel

from .requirements import PolicySettings, Requirement, ToolRule

__all__ = ["ApprovalPolicy", "PolicyDecision"]

_MANAGER = Requirement(level=StaffLevel.MANAGER, count=1)


@dataclass(frozen=True)
class PolicyDecision:
    rule: str
    requires: Requirement
    #: This action's own amount in EUR, when its rule is banded by amount and it converts.
    amount_eur: Decimal | None = None
    #: The amount the bands were applied to: this action plus earlier ones on the same order.
    cumulative_eur: Decimal | None = None


class ApprovalPolicy:
    def __init__(self, settings: PolicySettings) -> None:
        self._settings = settings
        self._rules = {r.tool: r for r in settings.rules}

    def is_banded(self, tool: str) -> bool:
        rule = self._rules.get(tool)
        return rule is not None and bool(rule.bands)

    def amount_eur(self, tool: str, arguments: Mapping[str, Any]) -> Decimal | None:
        """The action's amount in EUR, or None when it has none or it does not convert."""
        if not self.is_banded(tool):
            return None
        try:
            amount = Decimal(str(arguments["amount"]))
        except (KeyError, InvalidOperation):
            return None
        rate = self._settings.fx_to_eur.get(str(arguments.get("currency", "EUR")).upper())
        if rate is None or not amount.is_finite() or amount <= 0:
            return None
        return (amount * rate).quantize(Decimal("0.01"))

    def requirement(
        self,
        tool: str,
        risk: RiskLevel,
        arguments: Mapping[str, Any],
        *,
        earlier_eur: Decimal | None = Decimal(0),
    ) -> PolicyDecision:
        """The requirement for ``tool``; ``risk`` is the registry's, never the draft's claim.

        ``earlier_eur`` is what earlier, still-standing actions on the same order add up to:
        the runbook's limits apply to the cumulative amount, so splitting does not help.
        None means one of them has no EUR amount, and then the strictest band applies.
        """
        rule = self._rules.get(tool)
        if rule is None:
            decision = PolicyDecision(f"{risk.value}-action", self._by_risk(risk))
        elif rule.requires is not None:
            decision = PolicyDecision(rule.name, rule.requires)
        else:
            decision = self._banded(rule, self.amount_eur(tool, arguments), earlier_eur)
        if risk is RiskLevel.CRITICAL and not decision.requires.covers(_MANAGER):
            # A misconfigured rule must not let a critical action through below a manager.
            return PolicyDecision(
                f"{decision.rule}+critical-needs-manager",
                Requirement(level=StaffLevel.MANAGER, count=decision.requires.count),
                decision.amount_eur,
                decision.cumulative_eur,
            )
        return decision

    def _by_risk(self, risk: RiskLevel) -> Requirement:
        if risk is RiskLevel.READ:
            # A read tool never becomes a draft; if one does, treat it like a write.
            risk = RiskLevel.WRITE
        return self._settings.by_risk.get(risk, _MANAGER)

    @staticmethod
    def _banded(rule: ToolRule, amount: Decimal | None, earlier: Decimal | None) -> PolicyDecision:
        last = rule.bands[-1]
        if amount is None or earlier is None:
            # No amount or no exchange rate: the strictest band, never the loosest.
            return PolicyDecision(f"{last.name}:amount-not-convertible", last.requires)
        total = amount + earlier
        for band in rule.bands:
            if band.up_to_eur is None or total <= band.up_to_eur:
                return PolicyDecision(band.name, band.requires, amount, total)
        return PolicyDecision(last.name, last.requires, amount, total)

    def is_approver(self, principal: Principal) -> bool:
        """Staff with one of the approver roles (the level per draft is checked separately)."""
        return principal.level.at_least(StaffLevel.L1) and bool(
            set(principal.roles) & set(self._settings.approver_roles)
        )
