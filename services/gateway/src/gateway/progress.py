"""Wake waiting callers when their request moves, whichever replica did the writing.

Each gateway replica holds one ``LISTEN gateway_progress`` connection. The status projection
(running in whichever replica owns the partition) commits its change together with a
``pg_notify``; every replica hears it and wakes its own waiters. A waiter always re-reads the
database, so a missed notification only costs the poll interval, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import psycopg

from .repository import PROGRESS_CHANNEL
from .store import SETTLED_NOTICE

__all__ = ["ProgressHub"]

log = logging.getLogger(__name__)


class ProgressHub:
    """``dsn`` None: nothing to LISTEN on; the store calls :meth:`notify` itself (the
    in-process store of unit tests)."""

    def __init__(self, dsn: str | None, *, poll_s: float = 1.0) -> None:
        self._dsn = dsn
        self._poll_s = poll_s
        self._waiters: dict[uuid.UUID, set[tuple[asyncio.Event, bool]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        if self._dsn is None:
            self.listening.set()
            return
        self._task = asyncio.create_task(self._listen(), name="gateway-progress-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                assert self._dsn is not None
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {PROGRESS_CHANNEL}")
                    self.listening.set()
                    async for notice in conn.notifies():
                        self.notify(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening.clear()
                log.exception("progress listener lost its connection; reconnecting")
                # Waiters fall back to polling meanwhile.
                await asyncio.sleep(1.0)

    def notify(self, payload: str) -> None:
        """Wake the waiters of the request a progress notice names."""
        rid, _, mark = payload.partition(" ")
        try:
            request_id = uuid.UUID(rid)
        except ValueError:
            return
        for event, settled_only in self._waiters.get(request_id, ()):
            if mark == SETTLED_NOTICE or not settled_only:
                event.set()

    @contextlib.asynccontextmanager
    async def watch(
        self, request_id: uuid.UUID, *, settled_only: bool = False
    ) -> AsyncIterator[_Watch]:
        """Wake on every change of the request, or only when it may have settled."""
        waiter = (asyncio.Event(), settled_only)
        self._waiters[request_id].add(waiter)
        try:
            yield _Watch(waiter[0], self._poll_s)
        finally:
            waiters = self._waiters.get(request_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[request_id]


class _Watch:
    def __init__(self, event: asyncio.Event, poll_s: float) -> None:
        self._event = event
        self._poll_s = poll_s

    async def changed(self, within_s: float) -> None:
        """Return when notified, or after ``min(timeout, poll)`` so the caller re-reads."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=min(within_s, self._poll_s))
        self._event.clear()
