"""Retriever logic: a ChatRequested in; the input screen, then retrieval; a ContextRetrieved
out, and the audit steps.

The input guardrail runs before anything else reads the message: a request it blocks is
never embedded or searched, and still gets a ContextRetrieved (no chunks, the verdict set) so
the saga ends with a refusal instead of a timeout. Every verdict is audited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from opentelemetry import trace

from shared.contracts import (
    AuditOutcome,
    ChatRequested,
    ContextRetrieved,
    GuardrailVerdict,
    RetrievalStats,
    RetrievedChunk,
    ScoredSentence,
    Topic,
    derive_event_id,
)
from shared.guardrails import InputScreen
from shared.guardrails.documents import DocumentScreen, FlaggedContext, quote_untrusted
from shared.messaging import EventPublisher
from shared.principal import Classification, StaffLevel

from .metrics import RetrieverMetrics
from .retrieval import Retrieval, Retriever
from .search import RankedChunk, SearchResult

__all__ = ["RetrieverPorts", "handle_chat_requested"]

tracer = trace.get_tracer("retriever")


@dataclass(frozen=True)
class RetrieverPorts:
    retriever: Retriever
    screen: InputScreen
    bus: EventPublisher
    top_k: int
    #: Indirect-injection screen for retrieved chunks (None: chunks pass unscreened).
    documents: DocumentScreen | None = None
    flagged_context: FlaggedContext = FlaggedContext.QUOTE
    metrics: RetrieverMetrics | None = None


def _to_contract(chunk: RankedChunk) -> RetrievedChunk:
    p = chunk.payload
    updated = p.get("updated_at")
    return RetrievedChunk(
        chunk_id=str(p["chunk_id"]),
        doc_id=str(p["doc_id"]),
        doc_version=str(p["doc_version"]),
        title=str(p["title"]),
        section_path=tuple(p.get("section_path") or ()),
        source_uri=str(p["source_uri"]),
        text=str(p["text"]),
        score=round(chunk.score, 6),
        stage_scores={k: round(v, 6) for k, v in chunk.stage_scores.items()},
        classification=Classification(p["classification"]),
        min_level=StaffLevel(p["min_level"]),
        updated_at=datetime.fromisoformat(updated) if updated else None,
        sentences=tuple(ScoredSentence(text=t, similarity=v) for t, v in chunk.sentences),
    )


async def handle_chat_requested(event: ChatRequested, ports: RetrieverPorts) -> ContextRetrieved:
    verdict = await _screen(event, ports)
    if verdict.blocked:
        out = ContextRetrieved(
            event_id=derive_event_id(event.event_id, "retrieved"),
            request_id=event.request_id,
            tenant_id=event.tenant_id,
            request=event,
            input_verdict=verdict,
            stats=RetrievalStats(
                candidates=0,
                latency_ms=0.0,
                index_version=ports.retriever.searcher.index.version,
                embedding_model=ports.retriever.searcher.embedder.model_name,
            ),
        )
        await ports.bus.publish(Topic.RETRIEVED, out)
        return out
    retrieval = await _retrieve(event, ports)
    result = retrieval.result
    chunks, flagged = _screen_context([_to_contract(c) for c in result.chunks], result, ports)
    out = ContextRetrieved(
        event_id=derive_event_id(event.event_id, "retrieved"),
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        request=event,
        input_verdict=verdict,
        chunks=tuple(chunks),
        stats=RetrievalStats(
            candidates=result.candidates,
            latency_ms=round(result.latency_ms, 3),
            cache_hit=retrieval.cache_hit,
            index_version=result.index_version,
            embedding_model=ports.retriever.searcher.embedder.model_name,
            embedding_tokens=retrieval.embedding_tokens,
            embedding_cache_hit=retrieval.embedding_cache_hit,
            content_version=retrieval.content_version,
        ),
    )
    await ports.bus.publish(Topic.RETRIEVED, out)
    if ports.metrics is not None:
        ports.metrics.request(result.chunks, len(out.chunks))
    details: dict[str, object] = {
        "chunks": len(out.chunks),
        "doc_ids": sorted({c.doc_id for c in out.chunks}),
        "latency_ms": out.stats.latency_ms,
        "cache_hit": out.stats.cache_hit,
        "embedding_cache_hit": out.stats.embedding_cache_hit,
        "embedding_tokens": out.stats.embedding_tokens,
        "index_version": out.stats.index_version,
    }
    if retrieval.rejected:
        details["query_rejected"] = retrieval.rejected
    if flagged:
        details["flagged_chunks"] = flagged
        details["flagged_context"] = ports.flagged_context.value
    if result.degraded:
        details["degraded"] = list(result.degraded)
    await ports.bus.audit(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        action="retrieval.completed",
        actor=event.principal.user_id,
        subject_event_id=out.event_id,
        details=details,
    )
    return out


def _screen_context(
    chunks: list[RetrievedChunk], result: SearchResult, ports: RetrieverPorts
) -> tuple[list[RetrievedChunk], dict[str, float]]:
    """Apply the document screen: the ingest verdict in the payload, or (a chunk indexed
    before screening existed) a text-only screen now. Flagged chunks are quoted or withheld."""
    if ports.documents is None:
        return chunks, {}
    from .ingest import sentences_of

    verdicts = {str(c.payload["chunk_id"]): c.payload.get("injection") for c in result.chunks}
    kept: list[RetrievedChunk] = []
    flagged: dict[str, float] = {}
    for chunk in chunks:
        verdict = verdicts.get(chunk.chunk_id)
        if verdict is None:
            live = ports.documents.screen(sentences_of(chunk.text))
            verdict = {"flagged": live.flagged, "score": live.score}
        if not verdict["flagged"]:
            kept.append(chunk)
            continue
        flagged[chunk.chunk_id] = round(float(verdict["score"]), 4)
        if ports.flagged_context is FlaggedContext.QUOTE:
            kept.append(chunk.model_copy(update={"text": quote_untrusted(chunk.text)}))
    return kept, flagged


async def _screen(event: ChatRequested, ports: RetrieverPorts) -> GuardrailVerdict:
    with tracer.start_as_current_span("guardrail.input") as span:
        # A detector may be a model: keep the loop free for heartbeats and health checks.
        # If it fails, the handler fails and the bus retries, then dead-letters: no request
        # reaches retrieval unscreened.
        verdict = await asyncio.to_thread(ports.screen.screen, event.message)
        span.set_attribute("guardrail.blocked", verdict.blocked)
        span.set_attribute("guardrail.detector", verdict.detector)
    await ports.bus.audit(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        action="guardrail.input",
        actor=event.principal.user_id,
        subject_event_id=event.event_id,
        outcome=AuditOutcome.DENIED if verdict.blocked else AuditOutcome.OK,
        details={
            "blocked": verdict.blocked,
            "score": round(verdict.score, 4),
            "signals": list(verdict.signals),
            "detector": verdict.detector,
        },
    )
    return verdict


async def _retrieve(event: ChatRequested, ports: RetrieverPorts) -> Retrieval:
    searcher = ports.retriever.searcher
    with tracer.start_as_current_span(
        "retrieval",
        attributes={
            "gen_ai.operation.name": "retrieval",
            "gen_ai.request.model": searcher.embedder.model_name,
            "request_id": str(event.request_id),
        },
    ) as span:
        # Embedding and index search run off the loop; the shared caches are awaited on it.
        retrieval = await ports.retriever.aretrieve(event.message, event.principal, ports.top_k)
        span.set_attribute("retrieval.chunks", len(retrieval.result.chunks))
        span.set_attribute("retrieval.latency_ms", retrieval.result.latency_ms)
        span.set_attribute("retrieval.cache_hit", retrieval.cache_hit)
        span.set_attribute("retrieval.embedding_cache_hit", retrieval.embedding_cache_hit)
        span.set_attribute("gen_ai.usage.input_tokens", retrieval.embedding_tokens)
        if retrieval.rejected:
            span.set_attribute("retrieval.query_rejected", retrieval.rejected)
    return retrieval
