"""Composition root of the retriever: settings in, a running service out."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from shared.auth import TokenService
from shared.cache import AnswerCache, CacheMetrics, CacheStore, open_store
from shared.contracts import ChatRequested, Topic
from shared.guardrails import InputScreen, default_input_screen
from shared.service import Service

from .documents import discover, load_many
from .engine import Engine, build_engine
from .handlers import RetrieverPorts, handle_chat_requested
from .http_api import knowledge_router
from .ingest import IngestReport
from .metrics import RetrieverMetrics
from .settings import RetrieverSettings
from .shared_caches import RetrieverCaches

__all__ = ["build", "build_service"]

log = logging.getLogger(__name__)


def build_service(
    settings: RetrieverSettings,
    *,
    engine: Engine | None = None,
    screen: InputScreen | None = None,
    **overrides: Any,
) -> Service:
    """``engine`` replaces the one built from settings (tests); ``screen`` replaces the input
    guardrail run on every request before retrieval (default: the measured prompt-injection
    detector, ``shared.guardrails.default_input_screen``)."""
    service = Service("retriever", settings, **overrides)
    input_screen = screen or default_input_screen()
    holder: dict[str, Engine] = {}
    stores: dict[str, CacheStore] = {}
    cache_metrics = CacheMetrics(service.telemetry.meter("retriever.cache"))
    retriever_metrics = RetrieverMetrics(
        service.telemetry.meter("retriever"), relevance_threshold=settings.relevance_threshold
    )

    async def invalidate(tenant_id: str, doc_ids: list[str]) -> None:
        """A document changed or left: the cached answers citing it go (see shared.cache)."""
        store = stores.get("store")
        if store is not None and doc_ids:
            dropped = await AnswerCache(store, settings.caches).drop_documents(tenant_id, doc_ids)
            log.info("answer cache: %d answers dropped for %d documents", dropped, len(doc_ids))

    def current() -> Engine:
        if "engine" not in holder:
            raise RuntimeError("retrieval engine used before the service started")
        return holder["engine"]

    @service.on_startup
    async def open_engine() -> None:
        built = engine if engine is not None else await asyncio.to_thread(build_engine, settings)
        holder["engine"] = built
        built.retriever.searcher.metrics = retriever_metrics
        if built.retriever.cache is not None:
            built.retriever.cache.export(service.telemetry.registry)
        if settings.cache.enabled:
            stores["store"] = open_store(settings.caches)
            built.retriever.shared = RetrieverCaches(
                stores["store"], settings.caches, cache_metrics
            )
        if settings.knowledge_base is not None:
            report = await asyncio.to_thread(
                _ingest_folder,
                holder["engine"],
                settings.knowledge_base,
                settings.ingest.max_document_bytes,
            )
            log.info(
                "knowledge base: %d indexed, %d unchanged, %d failed",
                len(report.indexed),
                len(report.unchanged),
                len(report.failed),
            )
            for tenant, doc_ids in _by_tenant(report.indexed + report.deleted).items():
                await invalidate(tenant, doc_ids)

    @service.on_shutdown
    async def close_engine() -> None:
        built = holder.pop("engine", None)
        if built is not None and engine is None:
            built.close()
        store = stores.pop("store", None)
        if store is not None:
            await store.close()

    async def on_request(event: ChatRequested) -> None:
        e = current()
        await handle_chat_requested(
            event,
            RetrieverPorts(
                retriever=e.retriever,
                screen=input_screen,
                bus=service.bus,
                top_k=settings.top_k,
                documents=e.ingestor.screen,
                flagged_context=settings.flagged_context,
                metrics=retriever_metrics,
            ),
        )

    service.bus.subscribe(Topic.REQUEST, on_request, group_id=settings.group_id)
    service.include_router(
        knowledge_router(settings, TokenService(settings.auth), current, invalidate=invalidate)
    )
    return service


def _by_tenant(labels: list[str]) -> dict[str, list[str]]:
    """``tenant/doc_id`` labels of an ingest report, grouped by tenant."""
    grouped: dict[str, list[str]] = {}
    for label in labels:
        tenant, _, doc_id = label.partition("/")
        grouped.setdefault(tenant, []).append(doc_id)
    return grouped


def _ingest_folder(engine: Engine, folder: Path, max_bytes: int) -> IngestReport:
    return engine.ingestor.ingest(load_many(discover(folder), max_bytes=max_bytes))


def build(settings: RetrieverSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory retriever.app:build``."""
    return build_service(settings or RetrieverSettings()).http_app(title="Retriever")
