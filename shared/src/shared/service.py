"""The runtime shell every service shares: lifecycle, ``/healthz``, ``/metrics``, HTTP errors.

A composition root (``<service>/app.py``) builds a :class:`Service` from settings, registers
its subscribers on ``service.bus`` and its resources as start/stop hooks, and serves
``service.http_app(...)`` with uvicorn. The broker starts after every other resource (a pool,
an index) is open and stops first, so no message is handled by a half-built service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import Pool, open_pool
from shared.guardrails import redact as default_log_redact
from shared.messaging import EventBus, is_transient, make_broker
from shared.settings import ServiceSettings
from shared.telemetry import Redactor, Telemetry, setup

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
    ) -> None:
        self.name = name
        self.settings = settings
        # Personal data and secrets never reach logs or exported spans (a caller may pass its own).
        self.telemetry = telemetry or setup(
            settings.telemetry, name, redact=redact or default_log_redact
        )
        self.broker = broker or make_broker(settings.kafka, self.telemetry, client_id=name)
        self.bus = EventBus(self.broker, settings.kafka, service=name)
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._checks: dict[str, Check] = {"broker": self._broker_alive}
        self._routers: list[APIRouter] = []
        self.started = asyncio.Event()

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
        return bool(await self.broker.ping(timeout=2.0))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        """Start resources, then the broker; stop in reverse order."""
        started: list[Hook] = []
        try:
            for hook in self._startup:
                await hook()
                started.append(hook)
            await self.broker.start()
            self.started.set()
            log.info("%s started", self.name)
            yield self
        finally:
            self.started.clear()
            await self.broker.stop()
            for hook in reversed(self._shutdown):
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            self.telemetry.tracer_provider.force_flush(5_000)

    async def health(self) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=3.0)
            except Exception:
                results[name] = False
        return results

    def http_app(self, *, title: str | None = None, **fastapi_kwargs: Any) -> FastAPI:
        service = self

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with service.running():
                yield

        app = FastAPI(title=title or f"{self.name} service", lifespan=lifespan, **fastapi_kwargs)
        app.add_middleware(BodyLimitMiddleware, max_bytes=self.settings.http.max_body_bytes)
        _install_error_handlers(app)

        @app.get("/healthz", tags=["ops"], summary="Liveness and readiness of every dependency")
        async def healthz() -> Response:
            checks = await service.health()
            ok = service.started.is_set() and all(checks.values())
            return JSONResponse(
                {
                    "status": "ok" if ok else "unavailable",
                    "service": service.name,
                    "checks": checks,
                },
                status_code=200 if ok else 503,
            )

        @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
        async def metrics() -> Response:
            body = generate_latest(service.telemetry.registry) + generate_latest(REGISTRY)
            return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

        for router in self._routers:
            app.include_router(router)
        return app


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
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            # The database or broker is down: the caller may retry, nothing was half-done
            # that a retry with the same Idempotency-Key would repeat.
            log.warning("dependency unavailable: %r", exc)
            return JSONResponse(
                {"error": "unavailable", "message": "a dependency is unavailable; retry shortly"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
        log.error("unhandled error", exc_info=exc)
        return JSONResponse({"error": "internal", "message": "internal error"}, status_code=500)

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
