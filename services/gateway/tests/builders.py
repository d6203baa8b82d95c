"""Events the gateway's tests feed it: the decision that settles a request."""

from __future__ import annotations

from shared.contracts import (
    ChatRequested,
    ContextRetrieved,
    Decision,
    DraftDecided,
    DraftKind,
    DraftProduced,
    ExecutionResult,
    RetrievalStats,
)


def decided(
    chat: ChatRequested,
    kind: DraftKind = DraftKind.ANSWER,
    decision: Decision = Decision.AUTO_APPROVED,
    *,
    executed: bool | None = None,
    answer: str = "An answer.",
) -> DraftDecided:
    """The DraftDecided that ends ``chat``: an auto-approved answer unless told otherwise;
    ``executed`` adds an execution result (True: succeeded, False: failed)."""
    retrieved = ContextRetrieved(
        request_id=chat.request_id,
        tenant_id=chat.tenant_id,
        request=chat,
        stats=RetrievalStats(candidates=0, latency_ms=0, index_version="v", embedding_model="m"),
    )
    draft = DraftProduced(
        request_id=chat.request_id,
        tenant_id=chat.tenant_id,
        request=chat,
        kind=kind,
        answer=answer,
        model="m",
        retrieved_event_id=retrieved.event_id,
    )
    execution = (
        None
        if executed is None
        else ExecutionResult(status="succeeded" if executed else "failed", idempotency_key="k")
    )
    return DraftDecided(
        request_id=chat.request_id,
        tenant_id=chat.tenant_id,
        draft=draft,
        decision=decision,
        policy="p",
        execution=execution,
    )
