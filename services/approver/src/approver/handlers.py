"""Approver logic: answers pass by policy; actions wait for people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.contracts import (
    AuditOutcome,
    Decision,
    DraftDecided,
    DraftKind,
    DraftProduced,
    Topic,
    derive_event_id,
    utcnow,
)
from shared.messaging import EventBus

from .repository import ApprovalRepository

__all__ = ["ApproverPorts", "handle_draft"]

AUTO_POLICY = "answers-are-auto-approved"
HUMAN_POLICY = "actions-need-human-approval"


@dataclass(frozen=True)
class ApproverPorts:
    bus: EventBus
    repository: ApprovalRepository
    pending_ttl: timedelta


async def handle_draft(draft: DraftProduced, ports: ApproverPorts) -> None:
    actor = draft.request.principal.user_id
    if draft.kind is not DraftKind.ACTION:
        decided = DraftDecided(
            event_id=derive_event_id(draft.event_id, "decided"),
            request_id=draft.request_id,
            tenant_id=draft.tenant_id,
            draft=draft,
            decision=Decision.AUTO_APPROVED,
            policy=AUTO_POLICY,
            reason="A grounded answer or a refusal changes nothing; it is released by policy.",
        )
        await ports.bus.publish(Topic.APPROVED, decided)
        await ports.bus.audit(
            request_id=draft.request_id,
            tenant_id=draft.tenant_id,
            action="draft.auto_approved",
            actor=actor,
            subject_event_id=decided.event_id,
            details={
                "decision": decided.decision.value,
                "policy": AUTO_POLICY,
                "kind": draft.kind.value,
            },
        )
        return
    assert draft.action is not None
    await ports.repository.store_pending(
        draft, policy=HUMAN_POLICY, expires_at=utcnow() + ports.pending_ttl
    )
    await ports.bus.audit(
        request_id=draft.request_id,
        tenant_id=draft.tenant_id,
        action="approval.pending",
        actor=actor,
        subject_event_id=draft.event_id,
        outcome=AuditOutcome.PENDING,
        details={"tool": draft.action.tool, "policy": HUMAN_POLICY, "status": "pending"},
    )
