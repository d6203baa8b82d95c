"""The approver's domain: approvals, who may decide them, and the policy that sets what each
action needs. Pure: no I/O, no HTTP, no telemetry; callers pass in the time and the trace id.

Everything a caller needs is importable from here (``from approver.domain import sign``).
"""

from .approval import (
    SERVICE,
    Approval,
    ApprovalStatus,
    DecisionError,
    RefusalCode,
    Transition,
    Verdict,
    audit_event,
    check_signer,
    decided_event,
    sign,
)
from .objects import ActionContext, Subject
from .outcomes import execution_events, expired, expiry_events, finished
from .policy import ApprovalPolicy, PolicyDecision
from .requirements import AmountBand, PolicySettings, Requirement, ToolRule

__all__ = [
    "SERVICE",
    "ActionContext",
    "AmountBand",
    "Approval",
    "ApprovalPolicy",
    "ApprovalStatus",
    "DecisionError",
    "PolicyDecision",
    "PolicySettings",
    "RefusalCode",
    "Requirement",
    "Subject",
    "ToolRule",
    "Transition",
    "Verdict",
    "audit_event",
    "check_signer",
    "decided_event",
    "execution_events",
    "expired",
    "expiry_events",
    "finished",
    "sign",
]
