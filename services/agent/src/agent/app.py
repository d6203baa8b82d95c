"""Composition root of the agent."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.contracts import ContextRetrieved, Topic
from shared.service import Service

from .handlers import AgentPorts, handle_context_retrieved
from .models import ExtractiveModel
from .settings import AgentSettings

__all__ = ["build", "build_service"]


def build_service(settings: AgentSettings, **overrides: Any) -> Service:
    service = Service("agent", settings, **overrides)
    ports = AgentPorts(
        model=ExtractiveModel(
            max_sentences=settings.max_answer_sentences, min_relevance=settings.min_relevance
        ),
        bus=service.bus,
    )

    async def on_retrieved(event: ContextRetrieved) -> None:
        await handle_context_retrieved(event, ports)

    service.bus.subscribe(Topic.RETRIEVED, on_retrieved, group_id=settings.group_id)
    return service


def build(settings: AgentSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory agent.app:build``."""
    return build_service(settings or AgentSettings()).http_app(title="Agent")
