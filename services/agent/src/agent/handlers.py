"""Agent logic: ContextRetrieved in, DraftProduced out, every stage audited.

Stages, in order: the input guardrail's verdict (computed by the retriever) is honoured;
the request is routed (routine or high-risk); the agent loop runs on the routed model chain
with the tools the principal may use; a proposed write becomes an action draft; an answer
passes the citation check and the PII/secrets redaction before it leaves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry import trace

from shared.cache import AnswerCache
from shared.contracts import (
    AuditOutcome,
    Citation,
    ContextRetrieved,
    DraftKind,
    DraftProduced,
    ProposedAction,
    Topic,
    derive_event_id,
)
from shared.contracts.events import ModelRoute
from shared.guardrails import PIIRedactor
from shared.messaging import EventPublisher
from shared.pricing import CostMetrics, PricingSettings

from .answer_reuse import cacheable, reply_from, template_of
from .audit import AuditTrail
from .citations import CitationReport, check_citations
from .costing import request_cost
from .loop import LoopResult, run_loop
from .metrics import AgentMetrics
from .models import ChatModel, Conversation, ModelReply, Usage
from .question import focus_question
from .resilience import ModelChain
from .routing import Route, Router
from .settings import LoopSettings
from .toolgate import ToolGateway, describe_action

__all__ = ["AgentPorts", "ModelTiers", "handle_context_retrieved"]

tracer = trace.get_tracer("agent")

BLOCKED_TEXT = (
    "I can't help with that request as written. If you have a question about our products, "
    "orders or policies, please ask it directly."
)


@dataclass(frozen=True)
class ModelTiers:
    """The models a route can use; ``small``/``large`` are None when running offline."""

    offline: ChatModel
    small: ChatModel | None = None
    large: ChatModel | None = None

    def chain(self, route: Route) -> list[ChatModel]:
        online = [self.large, self.small] if route.name == "high_risk" else [self.small]
        return [*(m for m in online if m is not None), self.offline]


@dataclass(frozen=True)
class AgentPorts:
    bus: EventPublisher
    tiers: ModelTiers
    models: ModelChain
    router: Router
    tools: ToolGateway
    redactor: PIIRedactor
    metrics: AgentMetrics
    budget: LoopSettings
    pricing: PricingSettings = field(default_factory=PricingSettings)
    costs: CostMetrics | None = None
    #: The safe-answer cache (None: off).
    answers: AnswerCache | None = None


#: Tokens per model spent on one request.
ChatUsage = tuple[tuple[str, Usage], ...]


async def handle_context_retrieved(event: ContextRetrieved, ports: AgentPorts) -> DraftProduced:
    request = event.request
    trail = AuditTrail(
        ports.bus,
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        actor=request.principal.user_id,
        anchor=str(event.event_id),
    )
    with tracer.start_as_current_span(
        "invoke_agent",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.conversation.id": request.conversation_id or str(event.request_id),
            "request_id": str(event.request_id),
        },
    ) as span:
        verdict = event.input_verdict
        usage: ChatUsage = ()
        from_cache = False
        if verdict is not None and verdict.blocked:
            draft = _draft(event, DraftKind.REFUSAL, BLOCKED_TEXT, model="guardrail:input")
            trail.record(
                "guardrail.input",
                outcome=AuditOutcome.DENIED,
                details={
                    "detector": verdict.detector,
                    "score": verdict.score,
                    "signals": list(verdict.signals)[:10],
                },
            )
            ports.metrics.guardrail("input", "blocked")
        else:
            draft, usage, from_cache = await _run_agent(event, ports, trail)
        cost = request_cost(ports.pricing, event, usage)
        draft = draft.model_copy(update={"cost": cost, "served_from_cache": from_cache})
        span.set_attribute("draft.kind", draft.kind.value)
        span.set_attribute("gen_ai.response.model", draft.model)
        span.set_attribute("platform.cost_usd", cost.usd)
        span.set_attribute("platform.answer_cache_hit", from_cache)
    await ports.bus.publish(Topic.DRAFT, draft)
    trail.record(
        "draft.produced",
        subject_event_id=draft.event_id,
        details={
            "kind": draft.kind.value,
            "citations": [c.chunk_id for c in draft.citations],
            "model": draft.model,
            "route": draft.route.route if draft.route else None,
            "tool": draft.action.tool if draft.action else None,
            "served_from_cache": from_cache,
            "cost_usd": cost.usd,
            "cost": [item.model_dump(mode="json") for item in cost.items],
        },
    )
    if ports.costs is not None:
        ports.costs.record(event.tenant_id, cost)
    await trail.flush()
    return draft


async def _run_agent(
    event: ContextRetrieved, ports: AgentPorts, trail: AuditTrail
) -> tuple[DraftProduced, ChatUsage, bool]:
    """The draft, the tokens each model spent on it, and whether it came from the cache."""
    request = event.request
    route = await ports.router.route(event)
    chain = ports.tiers.chain(route)
    trail.record(
        "agent.routed",
        details={
            "route": route.name,
            "reason": route.reason,
            "by": route.by,
            "model": chain[0].name,
        },
    )
    ports.metrics.routes.add(1, {"route": route.name, "by": route.by})
    if route.name == "routine":
        reused = await _from_answer_cache(event, ports, trail, chain[0].name)
        if reused is not None:
            return reused, (), True
    conversation = Conversation(
        question=focus_question(request.message, ports.redactor),
        principal=request.principal,
        chunks=event.chunks,
        tools=ports.tools.descriptors(request.principal),
    )
    result = await run_loop(
        conversation,
        chain=chain,
        models=ports.models,
        tools=ports.tools,
        budget=ports.budget,
        request_id=str(event.request_id),
        audit=trail,
        route=route.name,
    )
    model_route = ModelRoute(
        route=route.name,
        reason=route.reason,
        requested_model=chain[0].name,
        fallbacks=result.fallbacks,
    )
    if result.action is not None:
        action = _action_draft(event, result.action, result.model, model_route, ports.redactor)
        return action, result.usage_by_model, False
    draft, report, redacted = _answer_draft(event, result, model_route, ports, trail)
    if ports.answers is not None and cacheable(draft, result, report, redacted):
        entry = template_of(result.reply.text, event.chunks, result.model, result.provider)
        if entry is not None:
            await ports.answers.put(
                request.message,
                request.principal.scope_key,
                event.stats.content_version,
                entry,
                tenant_id=event.tenant_id,
            )
    return draft, result.usage_by_model, False


async def _from_answer_cache(
    event: ContextRetrieved, ports: AgentPorts, trail: AuditTrail, requested_model: str
) -> DraftProduced | None:
    """A safe answer stored for this question and scope, through the usual checks."""
    if ports.answers is None:
        return None
    request = event.request
    cached = await ports.answers.get(
        request.message, request.principal.scope_key, event.stats.content_version
    )
    text = reply_from(cached, event.chunks) if cached is not None else None
    if cached is None or text is None:
        return None
    conversation = Conversation(
        question=focus_question(request.message, ports.redactor),
        principal=request.principal,
        chunks=event.chunks,
    )
    result = LoopResult(
        reply=ModelReply(text=text, model=cached.model),
        conversation=conversation,
        model=cached.model,
        provider=cached.provider,
        fallbacks=(),
        steps=0,
        usage=Usage(),
    )
    route = ModelRoute(route="routine", reason="answer cache", requested_model=requested_model)
    draft, _, _ = _answer_draft(event, result, route, ports, trail)
    return draft


def _answer_draft(
    event: ContextRetrieved,
    result: LoopResult,
    route: ModelRoute,
    ports: AgentPorts,
    trail: AuditTrail,
) -> tuple[DraftProduced, CitationReport, bool]:
    chunks = event.chunks
    evidence = [json.dumps(t.content, default=str) for t in result.conversation.turns if t.ok]
    report = check_citations(
        result.reply.text,
        chunks,
        question=result.conversation.question,
        evidence=evidence,
        # The offline model only quotes chunks and describes tool results; generative models
        # must back every uncited claim with a tool result.
        strict=result.provider != "offline",
    )
    trail.record(
        "guardrail.citations",
        outcome=AuditOutcome.OK if report.verdict in ("ok", "uncited") else AuditOutcome.DENIED,
        details={
            "verdict": report.verdict,
            "sentences": report.sentences,
            "dropped": report.dropped,
            "invalid_markers": report.invalid_markers,
            "unsupported_markers": report.unsupported_markers,
        },
    )
    ports.metrics.guardrail("citations", report.verdict)
    ports.metrics.citation_check(
        report.supported_markers, report.invalid_markers + report.unsupported_markers
    )
    text, found = _redact(ports.redactor, report.text)
    trail.record(
        "guardrail.output",
        outcome=AuditOutcome.OK,
        details={"redacted": found, "detector": "pii-patterns"},
    )
    ports.metrics.guardrail("output", "redacted" if found else "clean")
    grounded = report.verdict != "refused" and bool(report.citations or evidence)
    if grounded:
        ports.metrics.answered(cited=bool(report.citations))
    draft = _draft(
        event,
        DraftKind.ANSWER if grounded else DraftKind.REFUSAL,
        text,
        model=result.model,
        route=route,
        citations=report.citations,
    )
    return draft, report, bool(found)


def _action_draft(
    event: ContextRetrieved,
    action: ProposedAction,
    model: str,
    route: ModelRoute,
    redactor: PIIRedactor,
) -> DraftProduced:
    text = (
        f"I have prepared this for approval: {describe_action(action.tool, action.arguments)}."
        " It will be carried out once it has been approved; you can follow its status with"
        " this request's id."
    )
    return _draft(
        event, DraftKind.ACTION, redactor.redact(text), model=model, route=route, action=action
    )


def _draft(
    event: ContextRetrieved,
    kind: DraftKind,
    answer: str,
    *,
    model: str,
    route: ModelRoute | None = None,
    citations: Sequence[Citation] = (),
    action: ProposedAction | None = None,
) -> DraftProduced:
    return DraftProduced(
        event_id=derive_event_id(event.event_id, "draft"),
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        request=event.request,
        kind=kind,
        answer=answer,
        citations=tuple(citations),
        action=action,
        model=model,
        retrieved_event_id=event.event_id,
        route=route,
    )


def _redact(redactor: PIIRedactor, text: str) -> tuple[str, dict[str, int]]:
    """The answer with personal data and secrets replaced, and how many of each type."""
    counts: dict[str, int] = {}
    parts: list[str] = []
    end = 0
    for span in redactor.find(text):
        counts[span.type] = counts.get(span.type, 0) + 1
        parts += [text[end : span.start], f"<{span.type}>"]
        end = span.end
    return "".join([*parts, text[end:]]), counts
