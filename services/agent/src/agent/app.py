"""Composition root of the agent: models, routing, tools, guardrails, MCP server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from shared.auth import TokenService
from shared.cache import AnswerCache, CacheMetrics, CacheStore, open_store
from shared.contracts import ContextRetrieved, Topic
from shared.guardrails import PIIRedactor, default_redactor
from shared.pricing import CostMetrics
from shared.service import Service
from shared.tools import ToolRegistry, default_registry

from .handlers import AgentPorts, ModelTiers, handle_context_retrieved
from .mcp_server import McpToolServer
from .metrics import AgentMetrics
from .models import ExtractiveModel, OpenAIChatModel
from .models.openai_chat import OpenAIRouteClassifier
from .ratelimit import PostgresRateLimiter, RateLimiter
from .resilience import ModelChain
from .routing import RouteClassifier, Router
from .settings import AgentSettings
from .toolgate import Connect, ToolGateway

__all__ = ["AgentService", "build", "build_service"]


@dataclass(frozen=True)
class AgentService:
    service: Service
    ports: AgentPorts
    mcp: McpToolServer | None

    def http_app(self) -> FastAPI:
        app = self.service.http_app(title="Agent")
        if self.mcp is not None:
            # Last, so /healthz and /metrics match first; the MCP app owns only its path.
            app.mount("/", self.mcp.app)
        return app


def _tiers(settings: AgentSettings) -> tuple[ModelTiers, RouteClassifier | None]:
    m = settings.model
    offline = ExtractiveModel(
        max_sentences=m.max_sentences,
        min_relevance=m.min_relevance,
        semantic_weight=m.semantic_weight,
    )
    if m.provider == "offline":
        return ModelTiers(offline), None
    assert m.base_url is not None  # enforced by ModelSettings
    key = m.api_key.get_secret_value() if m.api_key else None
    client = OpenAIChatModel.client(m.base_url, key, timeout_s=m.timeout_s)

    def model(name: str) -> OpenAIChatModel:
        return OpenAIChatModel(
            client,
            name,
            max_output_tokens=m.max_output_tokens,
            temperature=m.temperature,
            timeout_s=m.timeout_s,
        )

    classifier = OpenAIRouteClassifier(client, m.small_model, timeout_s=min(m.timeout_s, 5.0))
    return ModelTiers(offline, small=model(m.small_model), large=model(m.large_model)), classifier


def build_agent(
    settings: AgentSettings,
    *,
    registry: ToolRegistry | None = None,
    limiter: RateLimiter | None = None,
    tiers: ModelTiers | None = None,
    redactor: PIIRedactor | None = None,
    connect: Connect | None = None,
    cache_store: CacheStore | None = None,
    **overrides: Any,
) -> AgentService:
    """Everything from settings; tests pass fakes for the registry, limiter, models or the
    connection the read tools use."""
    service = Service("agent", settings, **overrides)
    db = service.use_database()
    metrics = AgentMetrics(service.telemetry.meter("agent"))
    # Opening a store connects lazily: nothing touches Redis before the first request.
    store: CacheStore = cache_store or open_store(settings.caches)
    built_tiers, classifier = _tiers(settings)
    tools = ToolGateway(
        registry or default_registry(),
        connect=connect or (lambda: db.pool.connection()),
        limiter=limiter or PostgresRateLimiter(lambda: db.pool),
        limits=settings.rate_limit,
        metrics=metrics,
    )
    ports = AgentPorts(
        bus=service.bus,
        tiers=tiers or built_tiers,
        models=ModelChain(settings.resilience, metrics),
        router=Router(settings.routing, classifier),
        tools=tools,
        redactor=redactor or default_redactor(),
        metrics=metrics,
        budget=settings.loop,
        pricing=settings.pricing,
        costs=CostMetrics(service.telemetry.meter("agent.cost")),
        answers=AnswerCache(
            store, settings.caches, CacheMetrics(service.telemetry.meter("agent.cache"))
        ),
    )
    service.on_shutdown(store.close)

    async def on_retrieved(event: ContextRetrieved) -> None:
        await handle_context_retrieved(event, ports)

    service.bus.subscribe(Topic.RETRIEVED, on_retrieved, group_id=settings.group_id)
    mcp = None
    if settings.mcp.enabled:
        mcp = McpToolServer(tools, service.bus, settings.mcp, TokenService(settings.auth))
        service.on_startup(mcp.start)
        service.on_shutdown(mcp.stop)
    return AgentService(service, ports, mcp)


def build_service(settings: AgentSettings, **overrides: Any) -> Service:
    return build_agent(settings, **overrides).service


def build(settings: AgentSettings | None = None) -> FastAPI:
    """ASGI factory: ``uvicorn --factory agent.app:build``."""
    return build_agent(settings or AgentSettings()).http_app()
