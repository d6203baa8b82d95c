"""Retries, a circuit breaker per model, and the fallback chain large → small → offline.

Each model call is retried on transient errors (timeouts, 429, 5xx) with exponential backoff
and jitter (tenacity). Every attempt passes through that model's circuit breaker (purgatory):
after ``breaker_threshold`` consecutive failures the circuit opens and calls fail at once for
``breaker_reset_s``, so a dead endpoint costs nothing per request. When a model gives up
(retries exhausted, permanent error, open circuit), the next model of the chain answers; the
offline extractive model ends every chain and cannot fail for infrastructure reasons. Each
fallback is audited (``model.fallback``) and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.contracts import AuditOutcome

from .metrics import AgentMetrics
from .models import ChatModel, Conversation, ModelError, ModelReply, TransientModelError
from .settings import ResilienceSettings
from .toolgate import AuditSink

__all__ = ["ChainReply", "ModelChain"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("agent.models")


@dataclass(frozen=True)
class ChainReply:
    reply: ModelReply
    model: ChatModel
    fallbacks: tuple[str, ...]


class ModelChain:
    """Calls the models of a chain in order until one answers."""

    def __init__(
        self,
        settings: ResilienceSettings,
        metrics: AgentMetrics,
        breakers: AsyncCircuitBreakerFactory | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._breakers = breakers or AsyncCircuitBreakerFactory(
            default_threshold=settings.breaker_threshold,
            default_ttl=settings.breaker_reset_s,
            exclude=[asyncio.CancelledError],
        )
        self._breakers.add_listener(self._on_breaker_event)

    async def complete(
        self,
        chain: Sequence[ChatModel],
        conversation: Conversation,
        audit: AuditSink,
        *,
        route: str = "unknown",
    ) -> ChainReply:
        """``route`` (``routine`` / ``high_risk``) labels the GenAI metrics and fallbacks."""
        failed: list[str] = []
        for position, model in enumerate(chain):
            last = position == len(chain) - 1
            try:
                call = self._call if last else self._guarded
                reply = await call(model, conversation, route)
            except OpenedState:
                reason = "circuit_open"
            except ModelError as exc:
                if last:
                    raise
                reason = exc.reason
            else:
                return ChainReply(reply, model, tuple(failed))
            successor = chain[position + 1]
            failed.append(model.name)
            log.warning(
                "model %s failed (%s); falling back to %s", model.name, reason, successor.name
            )
            audit.record(
                "model.fallback",
                outcome=AuditOutcome.ERROR,
                details={"from": model.name, "to": successor.name, "reason": reason},
            )
            self._metrics.fallbacks.add(
                1,
                {
                    "from_model": model.name,
                    "to_model": successor.name,
                    "reason": reason,
                    "route": route,
                },
            )
        raise AssertionError("a model chain is never empty")  # pragma: no cover

    async def _guarded(
        self, model: ChatModel, conversation: Conversation, route: str
    ) -> ModelReply:
        breaker = await self._breakers.get_breaker(f"model:{model.name}")
        s = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.attempts),
            wait=wait_exponential_jitter(
                multiplier=s.backoff_initial_s, max=s.backoff_max_s, jitter=s.backoff_jitter_s
            ),
            retry=retry_if_exception_type(TransientModelError),
            before_sleep=lambda state: self._on_retry(model, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with breaker:
                    return await self._call(model, conversation, route)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, model: ChatModel, conversation: Conversation, route: str) -> ModelReply:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model.name,
        }
        started = time.perf_counter()
        with tracer.start_as_current_span(f"chat {model.name}", attributes=attributes) as span:
            try:
                reply = await model.complete(conversation)
            except ModelError as exc:
                self._metrics.duration.record(
                    time.perf_counter() - started,
                    {**attributes, "error.type": exc.reason, "route": route},
                )
                span.set_attribute("error.type", exc.reason)
                raise
            span.set_attribute("gen_ai.response.model", reply.model)
            span.set_attribute("gen_ai.usage.input_tokens", reply.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", reply.usage.output_tokens)
        labels = {**attributes, "gen_ai.response.model": reply.model, "route": route}
        self._metrics.duration.record(time.perf_counter() - started, labels)
        self._metrics.tokens.record(
            reply.usage.input_tokens, {**labels, "gen_ai.token.type": "input"}
        )
        self._metrics.tokens.record(
            reply.usage.output_tokens, {**labels, "gen_ai.token.type": "output"}
        )
        return reply

    def _on_retry(self, model: ChatModel, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, ModelError) else "error"
        self._metrics.retries.add(1, {"model": model.name, "reason": reason})

    def _on_breaker_event(self, name: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            state = str(getattr(event, "state", "unknown"))
            log.warning("circuit %s is now %s", name, state)
            self._metrics.circuit.add(1, {"circuit": name, "state": state})
