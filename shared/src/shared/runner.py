"""Serve a service's ASGI app with uvicorn (the ``python -m <service>`` entry points)."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.settings import ServiceSettings

__all__ = ["serve"]


def serve(factory: Callable[[], FastAPI], settings: ServiceSettings) -> None:
    uvicorn.run(
        factory,
        factory=True,
        host=settings.http.host,
        port=settings.http.port,
        log_level=settings.telemetry.log_level.lower(),
        # uvicorn's own handlers would print its lines in its own format; without them they
        # reach the service's handler (JSON, redacted, with ids) like every other line.
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
