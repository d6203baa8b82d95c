"""``python -m approver.worker``: the executor, outbox relay and sweeper, without intake.

For deployments that scale execution apart from the API, and for the fault test, which
restarts it dozens of times: it starts in about a second and stops on SIGTERM.

It serves ``/metrics`` (executions, write-tool timings, expiries) and ``/healthz`` (the
database answers) on ``APPROVER_EXECUTOR__METRICS_HOST``/``__METRICS_PORT``: no API, so the
small HTTP server is its own, on the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import REGISTRY, generate_latest

from shared.db import Pool, open_pool
from shared.guardrails import redact
from shared.telemetry import Telemetry, setup
from shared.tools import default_registry

from .entrypoints.background import Background
from .metrics import ApproverMetrics
from .settings import ApproverSettings
from .testing.failpoints import Failpoints

SERVICE = "approver-worker"

log = logging.getLogger(__name__)


def ops_app(telemetry: Telemetry, pool: Pool, loops_running: Callable[[], bool]) -> FastAPI:
    """``/metrics`` and ``/healthz`` of the worker (healthy: the database answers and
    ``loops_running()``, i.e. no background loop died)."""
    app = FastAPI(title="Approver worker", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = generate_latest(telemetry.registry) + generate_latest(REGISTRY)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz() -> Response:
        database = False
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.8), pool.connection() as conn:
                await conn.execute("SELECT 1")
                database = True
        loops = loops_running()
        ok = database and loops
        return JSONResponse(
            {
                "status": "ok" if ok else "unavailable",
                "service": SERVICE,
                "checks": {"database": database, "loops": loops},
            },
            status_code=200 if ok else 503,
        )

    return app


class _QuietServer(uvicorn.Server):
    """Signals are the worker's (stop the loops, then the server), not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(server: uvicorn.Server) -> None:
    """Serve /metrics and /healthz; a port that cannot be bound stops the server, not the
    executor (uvicorn exits the process on a bind error otherwise)."""
    try:
        await server.serve()
    except SystemExit:
        config = server.config
        log.error(  # noqa: TRY400 - uvicorn logged the OSError; its SystemExit says nothing
            "the worker's /metrics and /healthz are not served: %s:%s could not be bound"
            " (APPROVER_EXECUTOR__METRICS_PORT); executing without them",
            config.host,
            config.port,
        )


async def run(settings: ApproverSettings) -> None:
    # Redacted like every service's logs: a failed execution's error may quote its arguments.
    telemetry = setup(settings.telemetry, SERVICE, redact=redact)
    pool = await open_pool(settings.database, name=SERVICE)
    registry = default_registry()
    metrics = ApproverMetrics(telemetry.meter("approver"), registry)
    background = Background(
        settings, pool, registry, Failpoints(settings.failpoints), metrics=metrics
    )
    server = _QuietServer(
        uvicorn.Config(
            ops_app(telemetry, pool, background.running),
            host=settings.executor.metrics_host,
            port=settings.executor.metrics_port,
            log_level="warning",
            lifespan="off",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await background.start()
    serving = asyncio.create_task(_serve(server), name="approver-worker-http")
    try:
        await stop.wait()
    finally:
        await background.stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        await pool.close()
        telemetry.tracer_provider.force_flush(5_000)


if __name__ == "__main__":
    asyncio.run(run(ApproverSettings()))
