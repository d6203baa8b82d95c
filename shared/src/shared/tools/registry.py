"""Tool specs and the registry that validates, authorises, times out and retries calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from psycopg import AsyncConnection
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from shared.contracts import RiskLevel
from shared.principal import Principal, StaffLevel

__all__ = [
    "RetryPolicy",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolInvariantError",
    "ToolNotFound",
    "ToolPermissionError",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
]

A = TypeVar("A", bound=BaseModel)


class ToolError(Exception):
    """A tool call that cannot succeed as asked; ``code`` is stable, the message is for people."""

    code = "tool_error"


class ToolNotFound(ToolError):
    code = "unknown_tool"


class ToolArgumentError(ToolError):
    code = "invalid_arguments"


class ToolPermissionError(ToolError):
    code = "forbidden"


class ToolInvariantError(ToolError):
    """The object's state forbids the effect (refund above what is left, wrong currency, ...)."""

    code = "invariant_violated"


class TransientToolError(ToolError):
    """The system behind the tool failed in a way worth retrying."""

    code = "unavailable"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0


@dataclass(frozen=True)
class ToolContext:
    """Who calls, for which request, on which connection.

    Write tools run inside the caller's transaction (``conn``) under ``idempotency_key``, so
    the effect commits together with the approval's status change or not at all.
    """

    principal: Principal
    conn: AsyncConnection[Any]
    request_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ToolResult:
    data: dict[str, Any]
    effect_id: str | None = None
    created: bool = True  # False when an earlier execution with the same key already did it


Handler = Callable[[ToolContext, Any], Awaitable[ToolResult]]
#: A write tool's pre-flight: who may act on the object and whether its state allows the
#: effect, without writing anything. Returns the object's facts (for approvers) or raises a
#: ToolError. The handler repeats the same check with the object locked before it writes.
Checker = Callable[[ToolContext, Any], Awaitable[object]]


@dataclass(frozen=True)
class ToolSpec(Generic[A]):
    name: str
    description: str
    args: type[A]
    risk: RiskLevel
    handler: Handler
    min_level: StaffLevel = StaffLevel.NONE
    timeout_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check: Checker | None = None

    @property
    def runs_in_agent(self) -> bool:
        return self.risk is RiskLevel.READ

    def json_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()


class ToolRegistry:
    def __init__(self, specs: Iterable[ToolSpec[Any]] = ()) -> None:
        self._specs: dict[str, ToolSpec[Any]] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ToolSpec[Any]) -> None:
        if spec.name in self._specs:
            raise ValueError(f"tool {spec.name!r} registered twice")
        self._specs[spec.name] = spec

    def get(self, name: str) -> ToolSpec[Any]:
        try:
            return self._specs[name]
        except KeyError:
            raise ToolNotFound(f"no tool named {name!r}") from None

    def specs(self) -> list[ToolSpec[Any]]:
        return list(self._specs.values())

    def validate(self, name: str, arguments: dict[str, Any]) -> BaseModel:
        model: type[BaseModel] = self.get(name).args
        try:
            return model.model_validate(arguments)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            raise ToolArgumentError(f"{name}: {where}: {first['msg']}") from None

    def authorise(self, name: str, principal: Principal) -> ToolSpec[Any]:
        spec = self.get(name)
        if not principal.level.at_least(spec.min_level):
            raise ToolPermissionError(
                f"{name} needs staff level {spec.min_level.value},"
                f" the caller is {principal.level.value}"
            )
        return spec

    async def check(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> object:
        """Validate, authorise and pre-flight a write tool: its object's facts, or ToolError.

        Read-only and without locks: it answers "would this be allowed now?" when an action
        is drafted or shown to an approver. The effect's own transaction checks again.
        """
        spec = self.authorise(name, ctx.principal)
        args = self.validate(name, arguments)
        if spec.check is None:
            return None
        async with asyncio.timeout(spec.timeout_s):
            return await spec.check(ctx, args)

    async def run(self, name: str, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Validate, authorise and run a tool with its timeout and retry policy."""
        spec = self.authorise(name, ctx.principal)
        args = self.validate(name, arguments)
        if spec.risk is not RiskLevel.READ and not ctx.idempotency_key:
            raise ToolError(f"{name} changes state: it needs an idempotency key")
        retrying = AsyncRetrying(
            stop=stop_after_attempt(spec.retry.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=spec.retry.initial_backoff_s, max=spec.retry.max_backoff_s
            ),
            retry=retry_if_exception(lambda e: isinstance(e, TransientToolError | TimeoutError)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with asyncio.timeout(spec.timeout_s):
                    return await spec.handler(ctx, args)
        raise AssertionError("unreachable")  # pragma: no cover
