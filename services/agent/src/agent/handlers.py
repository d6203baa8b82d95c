"""Agent logic: ContextRetrieved in, DraftProduced out, one audit step."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace

from shared.contracts import (
    ContextRetrieved,
    DraftKind,
    DraftProduced,
    ProposedAction,
    Topic,
    derive_event_id,
)
from shared.messaging import EventBus

from .intents import Intent, detect_intent
from .models import ExtractiveModel

__all__ = ["AgentPorts", "handle_context_retrieved"]

tracer = trace.get_tracer("agent")

_TOOL_LABEL = {
    "issue_refund": "a refund",
    "reset_password": "a password reset",
    "create_ticket": "a support ticket",
    "escalate": "an escalation to a senior colleague",
}


@dataclass(frozen=True)
class AgentPorts:
    model: ExtractiveModel
    bus: EventBus


def _action_draft(event: ContextRetrieved, intent: Intent, model: str) -> DraftProduced:
    label = _TOOL_LABEL[intent.tool]
    args = intent.arguments
    detail = ""
    if intent.tool == "issue_refund":
        amount = f" of {args['amount']} {args['currency']}" if "amount" in args else ""
        detail = f"{amount} for order {args['order_id']}"
    summary = (
        f"{label[0].upper()}{label[1:]}{detail} requested by {event.request.principal.user_id}"
    )
    return DraftProduced(
        event_id=derive_event_id(event.event_id, "draft"),
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        request=event.request,
        kind=DraftKind.ACTION,
        answer=(
            f"I have prepared {label}{detail}. It will be carried out once it has been approved; "
            "you can follow its status with this request's id."
        ),
        action=ProposedAction(tool=intent.tool, arguments=args, risk=intent.risk, summary=summary),
        model=model,
        retrieved_event_id=event.event_id,
    )


async def handle_context_retrieved(event: ContextRetrieved, ports: AgentPorts) -> DraftProduced:
    request = event.request
    with tracer.start_as_current_span(
        "invoke_agent",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.request.model": ports.model.name,
            "gen_ai.provider.name": "offline",
            "request_id": str(event.request_id),
        },
    ) as span:
        intent = detect_intent(request.message, user_id=request.principal.user_id)
        if intent is not None and intent.complete:
            draft = _action_draft(event, intent, ports.model.name)
        else:
            answer = ports.model.answer(request.message, event.chunks)
            text = answer.text
            if intent is not None and not answer.grounded:
                text = (
                    f"To request {_TOOL_LABEL[intent.tool]} I need: {', '.join(intent.missing)}. "
                    "Please send it again with that included."
                )
            draft = DraftProduced(
                event_id=derive_event_id(event.event_id, "draft"),
                request_id=event.request_id,
                tenant_id=event.tenant_id,
                request=request,
                kind=DraftKind.ANSWER
                if answer.grounded or intent is not None
                else DraftKind.REFUSAL,
                answer=text,
                citations=answer.citations,
                model=ports.model.name,
                retrieved_event_id=event.event_id,
            )
        span.set_attribute("draft.kind", draft.kind.value)
    await ports.bus.publish(Topic.DRAFT, draft)
    await ports.bus.audit(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        action="draft.produced",
        actor=request.principal.user_id,
        subject_event_id=draft.event_id,
        details={
            "kind": draft.kind.value,
            "citations": [c.chunk_id for c in draft.citations],
            "model": draft.model,
            "tool": draft.action.tool if draft.action else None,
        },
    )
    return draft
