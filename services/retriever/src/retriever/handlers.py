"""Retriever logic: a ChatRequested in, a ContextRetrieved out, one audit step."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from opentelemetry import trace

from shared.contracts import (
    ChatRequested,
    ContextRetrieved,
    RetrievalStats,
    RetrievedChunk,
    Topic,
    derive_event_id,
)
from shared.messaging import EventBus
from shared.principal import Classification, StaffLevel

from .search import HybridSearcher, RankedChunk

__all__ = ["RetrieverPorts", "handle_chat_requested"]

tracer = trace.get_tracer("retriever")


@dataclass(frozen=True)
class RetrieverPorts:
    searcher: HybridSearcher
    bus: EventBus
    top_k: int


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
    )


async def handle_chat_requested(event: ChatRequested, ports: RetrieverPorts) -> ContextRetrieved:
    with tracer.start_as_current_span(
        "retrieval",
        attributes={
            "gen_ai.operation.name": "retrieval",
            "gen_ai.request.model": ports.searcher.embedder.model_name,
            "request_id": str(event.request_id),
        },
    ) as span:
        # Embedding and index search are CPU work in native code: keep the loop free for
        # heartbeats and health checks.
        result = await asyncio.to_thread(
            ports.searcher.search, event.message, event.principal, ports.top_k
        )
        span.set_attribute("retrieval.chunks", len(result.chunks))
        span.set_attribute("retrieval.latency_ms", result.latency_ms)
    out = ContextRetrieved(
        event_id=derive_event_id(event.event_id, "retrieved"),
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        request=event,
        chunks=tuple(_to_contract(c) for c in result.chunks),
        stats=RetrievalStats(
            candidates=result.candidates,
            latency_ms=round(result.latency_ms, 3),
            cache_hit=False,
            index_version=result.index_version,
            embedding_model=ports.searcher.embedder.model_name,
        ),
    )
    await ports.bus.publish(Topic.RETRIEVED, out)
    await ports.bus.audit(
        request_id=event.request_id,
        tenant_id=event.tenant_id,
        action="retrieval.completed",
        actor=event.principal.user_id,
        subject_event_id=out.event_id,
        details={
            "chunks": len(out.chunks),
            "doc_ids": sorted({c.doc_id for c in out.chunks}),
            "latency_ms": out.stats.latency_ms,
            "cache_hit": out.stats.cache_hit,
            "index_version": out.stats.index_version,
        },
    )
    return out
