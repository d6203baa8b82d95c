"""Composition root of the retriever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI

from shared.contracts import ChatRequested, Topic
from shared.service import Service

from .engine import Engine, build_engine
from .handlers import RetrieverPorts, handle_chat_requested
from .settings import RetrieverSettings

__all__ = ["build", "build_service"]

log = logging.getLogger(__name__)


def build_service(
    settings: RetrieverSettings, *, engine: Engine | None = None, **overrides: Any
) -> Service:
    service = Service("retriever", settings, **overrides)
    holder: dict[str, Engine] = {}

    @service.on_startup
    async def open_engine() -> None:
        holder["engine"] = engine or await asyncio.to_thread(build_engine, settings)
        if settings.knowledge_base is not None:
            report = await asyncio.to_thread(
                holder["engine"].ingestor.ingest_folder, settings.knowledge_base
            )
            log.info(
                "knowledge base: %d indexed, %d unchanged, %d failed",
                len(report.indexed),
                len(report.unchanged),
                len(report.failed),
            )

    @service.on_shutdown
    async def close_engine() -> None:
        if "engine" in holder and engine is None:
            holder["engine"].close()

    async def on_request(event: ChatRequested) -> None:
        e = holder["engine"]
        await handle_chat_requested(
            event, RetrieverPorts(searcher=e.searcher, bus=service.bus, top_k=settings.top_k)
        )

    service.bus.subscribe(Topic.REQUEST, on_request, group_id=settings.group_id)
    return service


def build(settings: RetrieverSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory retriever.app:build``."""
    return build_service(settings or RetrieverSettings()).http_app(title="Retriever")
