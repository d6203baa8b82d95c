"""Everything the run saw of one case: the gateway's reply, the saga's messages, the trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.contracts import (
    Citation,
    ContextRetrieved,
    DraftProduced,
    ProposedAction,
    RetrievedChunk,
)

from .asking import Reply
from .pricing import ModelUsage

__all__ = ["Observation", "observe"]


@dataclass(frozen=True)
class Observation:
    case_id: str
    request_id: str | None
    trace_id: str | None
    #: The request's status at the gateway (``answered``, ``pending_approval``, ...).
    status: str | None
    #: Why there is no usable reply (an HTTP error, a timeout); None when there is one.
    error: str | None
    latency_ms: float | None
    answer: str
    citations: tuple[Citation, ...]
    #: The drafted action, from the draft (a pending action is not in the gateway's result).
    action: ProposedAction | None
    #: What the retriever handed on; None when its message was not seen.
    retrieved: tuple[RetrievedChunk, ...] | None
    #: Tokens per model; None when the trace did not arrive.
    usage: tuple[ModelUsage, ...] | None


def observe(
    reply: Reply,
    retrieved: ContextRetrieved | None,
    draft: DraftProduced | None,
    usage: tuple[ModelUsage, ...] | None,
) -> Observation:
    result = reply.result or {}
    answer = str(result.get("answer") or (draft.answer if draft else ""))
    citations = _citations(result.get("citations")) or (draft.citations if draft else ())
    action = draft.action if draft and draft.action else _action(result.get("action"))
    return Observation(
        case_id=reply.case_id,
        request_id=reply.request_id,
        trace_id=reply.trace_id,
        status=reply.status,
        error=reply.error,
        latency_ms=reply.latency_ms,
        answer=answer,
        citations=citations,
        action=action,
        retrieved=retrieved.chunks if retrieved is not None else None,
        usage=usage,
    )


def _citations(raw: Any) -> tuple[Citation, ...]:
    if not isinstance(raw, list):
        return ()
    try:
        return tuple(Citation.model_validate(c) for c in raw)
    except ValidationError:
        return ()


def _action(raw: Any) -> ProposedAction | None:
    if not isinstance(raw, dict):
        return None
    try:
        return ProposedAction.model_validate(raw)
    except ValidationError:
        return None
