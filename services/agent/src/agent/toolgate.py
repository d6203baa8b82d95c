"""The tool guardrail and the only way the agent (and its MCP server) touches tools.

Every request for a tool goes through the same checks, in order, each with a stable code:

1. ``unknown_tool``: the registry has no such tool;
2. ``forbidden``: the caller's staff level is below the tool's, or a customer acts on
   someone else's account;
3. ``invalid_arguments``: the arguments fail the tool's pydantic schema;
4. ``rate_limited``: the tenant's bucket for reads or for proposals is empty (shared by all
   replicas, see :mod:`agent.ratelimit`);
5. ``not_requested``: a write proposed by a model while the user's own message asks for no
   action; retrieved text can make a model *want* a refund, only the user can ask for one.

What passes is either run (read tools, with the caller's identity, in a read-only
transaction) or turned into a :class:`ProposedAction` for approval (write and critical tools:
they never run here). A write is first pre-flighted against its object, read-only: a
customer's refund on someone else's order, above what is left on the order or in another
currency is refused here (``forbidden``, ``invariant_violated``), before anyone is asked to
approve it. The executor checks the same rules again, with the object locked, when it runs.
Each request is audited (``guardrail.tool``, then ``tool.executed`` or ``tool.proposed``) and
counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from opentelemetry import trace
from psycopg import AsyncConnection
from pydantic import JsonValue

from shared.contracts import AuditOutcome, ProposedAction
from shared.principal import Principal, StaffLevel
from shared.tools import (
    ToolArgumentError,
    ToolContext,
    ToolError,
    ToolNotFound,
    ToolPermissionError,
    ToolRegistry,
    ToolSpec,
)
from shared.tools.metrics import ToolMetrics
from shared.tools.metrics import ToolOutcome as ToolMetricOutcome

from .intents import is_action_request
from .metrics import AgentMetrics
from .models import ToolDescriptor
from .ratelimit import BucketLimit, RateLimiter
from .settings import RateLimitSettings

__all__ = ["AuditSink", "Connect", "ToolGateway", "ToolOutcome", "ToolRequest", "describe_action"]

tracer = trace.get_tracer("agent.tools")

Status = Literal[
    "ok",
    "proposed",
    "unknown_tool",
    "forbidden",
    "invalid_arguments",
    "rate_limited",
    "not_requested",
    "invariant_violated",
    "failed",
]
#: ``platform.tool.duration``'s outcome: the tool ran (ok, failed) or a guard refused it.
_OUTCOME: dict[str, ToolMetricOutcome] = {"ok": "ok", "proposed": "ok", "failed": "failed"}

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]


class AuditSink(Protocol):
    def record(
        self,
        action: str,
        *,
        outcome: AuditOutcome = AuditOutcome.OK,
        details: dict[str, Any] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class ToolRequest:
    name: str
    arguments: dict[str, Any]
    principal: Principal
    request_id: str
    origin: Literal["agent", "mcp"]
    #: The user's own message (agent origin): the only source of a request for action.
    user_message: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class ToolOutcome:
    status: Status
    data: dict[str, Any] = field(default_factory=dict)
    action: ProposedAction | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "proposed")


_LABEL = {
    "issue_refund": "Refund",
    "reset_password": "Password reset",
    "create_ticket": "Support ticket",
    "escalate": "Escalation to a senior colleague",
}


class ToolGateway:
    def __init__(
        self,
        registry: ToolRegistry,
        *,
        connect: Connect,
        limiter: RateLimiter,
        limits: RateLimitSettings,
        metrics: AgentMetrics,
    ) -> None:
        self.registry = registry
        self._connect = connect
        self._limiter = limiter
        self._limits = {
            "read": BucketLimit(limits.read_per_minute / 60, limits.read_burst),
            "propose": BucketLimit(limits.propose_per_minute / 60, limits.propose_burst),
        }
        self._metrics = metrics
        self._timings = ToolMetrics(metrics.meter, registry)
        # JSON schemas cost about a millisecond each to generate: once, not per request.
        self._descriptors = [
            (s.min_level, ToolDescriptor(s.name, s.description, s.json_schema(), s.risk))
            for s in registry.specs()
        ]

    def descriptors(self, principal: Principal) -> list[ToolDescriptor]:
        """The tools this principal may request: a model is never shown one it cannot use."""
        return [d for level, d in self._descriptors if principal.level.at_least(level)]

    async def call(self, request: ToolRequest, audit: AuditSink) -> ToolOutcome:
        started = time.perf_counter()
        with tracer.start_as_current_span(
            f"execute_tool {request.name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": request.name,
                "gen_ai.tool.call.id": request.call_id,
                "tool.origin": request.origin,
            },
        ) as span:
            outcome, spec = await self._guard(request)
            details: dict[str, Any] = {
                "tool": request.name,
                "origin": request.origin,
                "status": outcome.status if outcome else "passed",
                "arguments": sorted(request.arguments)[:20],
            }
            if outcome is not None:
                details["message"] = str(outcome.data.get("message", ""))[:300]
            audit.record(
                "guardrail.tool",
                outcome=AuditOutcome.OK if outcome is None else AuditOutcome.DENIED,
                details=details,
            )
            self._metrics.guardrail("tool", "passed" if outcome is None else outcome.status)
            if outcome is None:
                assert spec is not None
                outcome = await self._perform(request, spec, audit, started)
            span.set_attribute("tool.status", outcome.status)
        tool = self._timings.tool_label(request.name)  # a model may name any tool: bounded
        self._metrics.tool_calls.add(
            1, {"tool": tool, "status": outcome.status, "origin": request.origin}
        )
        self._timings.record(
            tool, _OUTCOME.get(outcome.status, "refused"), time.perf_counter() - started
        )
        return outcome

    async def _guard(self, request: ToolRequest) -> tuple[ToolOutcome | None, ToolSpec[Any] | None]:
        try:
            spec = self.registry.authorise(request.name, request.principal)
            _check_ownership(request, spec)
            self.registry.validate(request.name, request.arguments)
        except (ToolNotFound, ToolPermissionError, ToolArgumentError) as exc:
            return _refused(exc.code, str(exc)), None
        bucket = "read" if spec.runs_in_agent else "propose"
        decision = await self._limiter.acquire(
            request.principal.tenant_id, bucket, self._limits[bucket]
        )
        if not decision.allowed:
            return (
                _refused(
                    "rate_limited",
                    f"too many {bucket} tool calls for tenant {request.principal.tenant_id};"
                    f" retry in {decision.retry_after_s:.1f}s",
                    retry_after_s=round(decision.retry_after_s, 3),
                ),
                None,
            )
        if (
            not spec.runs_in_agent
            and request.origin == "agent"
            and not is_action_request(request.user_message)
        ):
            return (
                _refused(
                    "not_requested",
                    f"{request.name} was not asked for by the user; only the user's own message"
                    " can request an action",
                ),
                None,
            )
        return None, spec

    async def _perform(
        self, request: ToolRequest, spec: ToolSpec[Any], audit: AuditSink, started: float
    ) -> ToolOutcome:
        args = self.registry.validate(request.name, request.arguments)
        if not spec.runs_in_agent:
            refused = await self._preflight(request, spec, audit)
            if refused is not None:
                return refused
            arguments: dict[str, JsonValue] = args.model_dump(mode="json", exclude_none=True)
            action = ProposedAction(
                tool=spec.name,
                arguments=arguments,
                risk=spec.risk,
                summary=_summary(spec.name, arguments, request.principal),
            )
            audit.record(
                "tool.proposed",
                outcome=AuditOutcome.PENDING,
                details={"tool": spec.name, "risk": spec.risk.value, "origin": request.origin},
            )
            return ToolOutcome("proposed", {"approval": "pending"}, action)
        try:
            async with self._connect() as conn:
                # Defence in depth: a read tool cannot write, whatever its implementation does.
                await conn.execute("SET TRANSACTION READ ONLY")
                ctx = ToolContext(request.principal, conn, request_id=request.request_id)
                result = await self.registry.run(request.name, request.arguments, ctx)
        except (ToolError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, ToolError) else "timeout"
            audit.record(
                "tool.executed",
                outcome=AuditOutcome.ERROR,
                details={"tool": spec.name, "origin": request.origin, "code": code},
            )
            return ToolOutcome("failed", {"code": code, "message": str(exc) or code})
        audit.record(
            "tool.executed",
            details={
                "tool": spec.name,
                "origin": request.origin,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return ToolOutcome("ok", result.data)

    async def _preflight(
        self, request: ToolRequest, spec: ToolSpec[Any], audit: AuditSink
    ) -> ToolOutcome | None:
        """Refuse a write whose object the caller may not act on, or whose state forbids it."""
        try:
            async with self._connect() as conn:
                await conn.execute("SET TRANSACTION READ ONLY")
                ctx = ToolContext(request.principal, conn, request_id=request.request_id)
                await self.registry.check(request.name, request.arguments, ctx)
        except (ToolError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, ToolError) else "timeout"
            status = code if code in ("forbidden", "invariant_violated") else "failed"
            audit.record(
                "tool.proposed",
                outcome=AuditOutcome.DENIED,
                details={"tool": spec.name, "origin": request.origin, "code": code},
            )
            return ToolOutcome(status, {"code": code, "message": str(exc) or code})  # type: ignore[arg-type]
        return None


def _refused(code: str, message: str, **extra: Any) -> ToolOutcome:
    return ToolOutcome(code, {"code": code, "message": message, **extra})  # type: ignore[arg-type]


def _check_ownership(request: ToolRequest, spec: ToolSpec[Any]) -> None:
    """Customers act on their own account only; staff act for the customers they serve."""
    if request.principal.level is not StaffLevel.NONE:
        return
    target = request.arguments.get("user_id")
    if target is not None and target != request.principal.user_id:
        raise ToolPermissionError(f"{spec.name}: a customer can only act on their own account")


def describe_action(tool: str, arguments: dict[str, JsonValue]) -> str:
    """``Refund of 80.00 EUR for order HP-10023``: what an approver and the user read."""
    detail = ""
    if tool == "issue_refund":
        if "amount" in arguments:
            detail = f" of {arguments['amount']} {arguments.get('currency', '')}".rstrip()
        detail += f" for order {arguments.get('order_id')}"
    elif arguments.get("order_id"):
        detail = f" about order {arguments['order_id']}"
    return f"{_LABEL.get(tool, tool)}{detail}"


def _summary(tool: str, arguments: dict[str, JsonValue], principal: Principal) -> str:
    return f"{describe_action(tool, arguments)} requested by {principal.user_id}"
