"""The runtime shell every service shares: lifecycle, ``/healthz``, ``/metrics``, HTTP errors.

A composition root (``<service>/app.py``) builds a :class:`Service` from settings, registers
its subscribers on ``service.bus`` and its resources as start/stop hooks, and serves
``service.http_app(...)`` with uvicorn. The broker starts after every other resource (a pool,
an index) is open and stops first, so no message is handled by a half-built service.

``/healthz`` answers from a cached view: a background task runs every check (each bounded by a
short timeout) once a second while the service runs, and the endpoint returns the last results
with their age. A probe therefore costs nothing and never waits on a dead dependency (a broker
ping alone can take seconds to give up), yet still reports ``unavailable`` while one is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY, generate_latest
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import log_context
from shared.db import Pool, open_pool
from shared.guardrails import redact as default_log_redact
from shared.log_context import LogContextMiddleware
from shared.messaging import EventBus, is_transient, make_broker
from shared.messaging.metrics import ConsumerLag, MessagingMetrics
from shared.settings import ServiceSettings
from shared.telemetry import Redactor, Telemetry, instrument_http, setup

__all__ = ["BodyLimitMiddleware", "Database", "Service"]

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
Check = Callable[[], Awaitable[bool]]


class Service:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        telemetry: Telemetry | None = None,
        broker: KafkaBroker | None = None,
        redact: Redactor | None = None,
        health_interval_s: float = 1.0,
        health_check_timeout_s: float = 0.8,
    ) -> None:
        self.name = name
        self.settings = settings
        # Personal data and secrets never reach logs or exported spans (a caller may pass its own).
        self.telemetry = telemetry or setup(
            settings.telemetry, name, redact=redact or default_log_redact
        )
        self.broker = broker or make_broker(settings.kafka, self.telemetry, client_id=name)
        meter = self.telemetry.meter("shared.messaging")
        self.consumer_lag = ConsumerLag(meter)
        self.bus = EventBus(
            self.broker,
            settings.kafka,
            service=name,
            metrics=MessagingMetrics(meter),
            lag=self.consumer_lag,
        )
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._checks: dict[str, Check] = {"broker": self._broker_alive}
        self._routers: list[APIRouter] = []
        self.started = asyncio.Event()
        self._health_interval_s = health_interval_s
        self._health_check_timeout_s = health_check_timeout_s
        self._health_view: tuple[dict[str, bool], float] | None = None
        self._health_task: asyncio.Task[None] | None = None

    def on_startup(self, hook: Hook) -> Hook:
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self._shutdown.append(hook)
        return hook

    def add_health_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def include_router(self, router: APIRouter) -> None:
        """Add service-specific HTTP routes next to /healthz and /metrics."""
        self._routers.append(router)

    def use_database(self) -> Database:
        """A pool opened at start-up, closed at shutdown and checked by ``/healthz``."""
        db = Database(self)
        self.on_startup(db.open)
        self.on_shutdown(db.close)
        self.add_health_check("database", db.alive)
        return db

    async def _broker_alive(self) -> bool:
        # FastStream's ping retries until its own timeout; keep it inside the check's budget.
        return bool(await self.broker.ping(timeout=self._health_check_timeout_s))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        """Start resources, then the broker; stop in reverse order."""
        started: list[Hook] = []
        try:
            for hook in self._startup:
                await hook()
                started.append(hook)
            await self.broker.start()
            await self.consumer_lag.start()
            # One synchronous round first, so /healthz never answers from an empty view.
            self._health_view = (await self.health(), time.monotonic())
            self._health_task = asyncio.create_task(
                self._refresh_health(), name=f"{self.name}-health"
            )
            self.started.set()
            log.info("%s started", self.name)
            yield self
        finally:
            self.started.clear()
            await self._stop_health()
            await self.consumer_lag.stop()
            await self.broker.stop()
            for hook in reversed(self._shutdown):
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            self.telemetry.tracer_provider.force_flush(5_000)

    async def health(self) -> dict[str, bool]:
        """Run every check now, concurrently, each bounded by the check timeout."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        return dict(zip(names, results, strict=True))

    async def _run_check(self, check: Check) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), timeout=self._health_check_timeout_s))
        except Exception:
            # A check that fails or hangs means "not ready"; why is for the logs of the
            # component itself (a failing check here would log once a second).
            return False

    def health_view(self) -> tuple[dict[str, bool], float | None]:
        """The last results of the checks and their age in seconds (None: never checked)."""
        if self._health_view is None:
            return {}, None
        checks, at = self._health_view
        return dict(checks), time.monotonic() - at

    @property
    def _health_max_age_s(self) -> float:
        """Older than this, the view is not trusted: the refresher is stuck or gone."""
        return 3 * self._health_interval_s + self._health_check_timeout_s

    async def _refresh_health(self) -> None:
        while True:
            await asyncio.sleep(self._health_interval_s)
            try:
                self._health_view = (await self.health(), time.monotonic())
            except Exception:  # health() catches per check; this only guards the loop
                log.exception("health refresh failed")

    async def _stop_health(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._health_view = None

    def http_app(self, *, title: str | None = None, **fastapi_kwargs: Any) -> FastAPI:
        service = self

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with service.running():
                yield

        app = FastAPI(title=title or f"{self.name} service", lifespan=lifespan, **fastapi_kwargs)
        app.add_middleware(BodyLimitMiddleware, max_bytes=self.settings.http.max_body_bytes)
        instrument_http(app, self.telemetry)
        # Added last, so outside the body limit: every line of a request, a refused body's
        # included, carries its ids.
        app.add_middleware(LogContextMiddleware, service=self.name)
        _install_error_handlers(app)

        @app.get(
            "/healthz",
            tags=["ops"],
            summary="Liveness and readiness of every dependency",
            response_model=HealthView,
            responses={503: {"model": HealthView, "description": "A dependency is down"}},
        )
        async def healthz() -> Response:
            # Never awaits a dependency: the refresher task keeps the view current.
            checks, age = service.health_view()
            fresh = age is not None and age <= service._health_max_age_s
            ok = service.started.is_set() and fresh and bool(checks) and all(checks.values())
            return JSONResponse(
                {
                    "status": "ok" if ok else "unavailable",
                    "service": service.name,
                    "checks": checks,
                    "age_s": None if age is None else round(age, 3),
                },
                status_code=200 if ok else 503,
            )

        @app.get(
            "/metrics",
            tags=["ops"],
            summary="Prometheus metrics",
            response_class=PlainTextResponse,
            responses={
                200: {
                    "description": "Prometheus text exposition format 0.0.4",
                    "content": {_METRICS_TYPE: {"schema": {"type": "string"}}},
                }
            },
        )
        async def metrics() -> Response:
            body = generate_latest(service.telemetry.registry) + generate_latest(REGISTRY)
            return PlainTextResponse(body, media_type=_METRICS_TYPE)

        for router in self._routers:
            app.include_router(router)
        return app


_METRICS_TYPE = "text/plain; version=0.0.4"


class HealthView(BaseModel):
    """What ``/healthz`` answers (200 when every check passed, 503 otherwise)."""

    status: Literal["ok", "unavailable"]
    service: str
    checks: dict[str, bool] = Field(description="Each dependency: reachable or not.")
    age_s: float | None = Field(description="Age of the cached view, in seconds.")


class Database:
    def __init__(self, service: Service) -> None:
        self._service = service
        self._pool: Pool | None = None

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("database pool used before the service started")
        return self._pool

    async def open(self) -> None:
        self._pool = await open_pool(self._service.settings.database, name=self._service.name)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def alive(self) -> bool:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return True


def _install_error_handlers(app: FastAPI) -> None:
    """Bad input is the caller's mistake: answer 4xx with a message, never a 500."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "invalid_request", "message": "request validation failed", "errors": errors},
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this from its outermost middleware, after the request's log scope
        # was left: enter it again, so the line names the request, and so does the answer.
        context = log_context.of_request(request.scope)
        ids = {"X-Request-ID": context.request_id} if context and context.request_id else {}
        with log_context.resumed(context):
            if is_transient(exc):
                # The database or broker is down: the caller may retry, nothing was half-done
                # that a retry with the same Idempotency-Key would repeat.
                log.warning("dependency unavailable: %r", exc)
                return JSONResponse(
                    {
                        "error": "unavailable",
                        "message": "a dependency is unavailable; retry shortly",
                    },
                    status_code=503,
                    headers={"Retry-After": "2", **ids},
                )
            log.error("unhandled error", exc_info=exc)
        return JSONResponse(
            {"error": "internal", "message": "internal error"}, status_code=500, headers=ids
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        detail.setdefault("error", _ERROR_NAMES.get(exc.status_code, "error"))
        return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)


_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, before the app reads them.

    Checks the declared Content-Length and also counts streamed chunks, so a chunked upload
    cannot slip past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(send)
            return
        seen = 0
        too_large = False

        async def counted() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = (
            b'{"error":"payload_too_large","message":"request body exceeds '
            + str(self.max_bytes).encode()
            + b' bytes"}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
