"""Deciding on an approval: the one flow behind approve and reject, whoever calls it.

The HTTP API calls it for the inbox and any other client, and tests call it directly. It
knows nothing of HTTP: a refusal is a :class:`~approver.domain.DecisionError` with a
:class:`~approver.domain.RefusalCode`, which the caller translates (the API into a 4xx).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.principal import Principal
from shared.telemetry import current_trace_id

from ..domain import Approval, ApprovalPolicy, Transition, Verdict, sign
from .decision_span import decision_span, link_to_saga
from .ports import ApprovalStore

__all__ = ["decide"]


async def decide(
    store: ApprovalStore,
    policy: ApprovalPolicy,
    principal: Principal,
    draft_id: uuid.UUID,
    verdict: Verdict,
    reason: str,
    *,
    now: datetime,
) -> Transition:
    """Sign ``draft_id`` off as ``principal`` and commit it with its events.

    Raises :class:`~approver.domain.DecisionError` when the sign-off is refused, and then
    nothing changes. The decision is a trace of its own, linked to the saga's
    (:mod:`.decision_span`); its audit steps carry that trace's id.
    """
    with decision_span(verdict, str(draft_id)) as span:
        trace_id = current_trace_id()

        def apply(approval: Approval) -> Transition:
            return sign(
                approval, principal, verdict, reason, policy=policy, now=now, trace_id=trace_id
            )

        transition = await store.decide(principal.tenant_id, draft_id, apply)
        link_to_saga(span, transition.approval.trace)
        span.set_attribute("request_id", str(transition.approval.request_id))
    return transition
