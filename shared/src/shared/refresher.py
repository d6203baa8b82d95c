"""A figure refreshed in the background, so that reading it (a metrics scrape) never waits.

Gauges that need a query (pending approvals, consumer lag) are read by the Prometheus scrape
inside a callback that must not block. A :class:`Refresher` runs the query every
``refresh_s`` seconds, bounded by ``timeout_s``, and keeps going when one round fails: the
last figures stay as they were, and the failure is logged (the telemetry log filter keeps a
long outage from flooding the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Refresher"]

log = logging.getLogger(__name__)


class Refresher:
    def __init__(
        self,
        refresh: Callable[[], Awaitable[Any]],
        *,
        name: str,
        refresh_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        """``name`` says what is measured, in the task's name and the log."""
        self._refresh = refresh
        self._name = name
        self._refresh_s = refresh_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"refresh-{self._name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s not measured: %r", self._name, exc)
            await asyncio.sleep(self._refresh_s)
