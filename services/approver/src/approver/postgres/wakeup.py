"""Wake a loop when another transaction commits work for it (PostgreSQL LISTEN/NOTIFY).

A notification is only a hint: every loop also polls, so a lost one costs the poll interval.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

__all__ = ["Listener"]

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, dsn: str, channels: dict[str, asyncio.Event]) -> None:
        self._dsn = dsn
        self._channels = channels

    async def run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    for channel in self._channels:
                        await conn.execute(f"LISTEN {channel}")
                    async for notice in conn.notifies():
                        event = self._channels.get(notice.channel)
                        if event is not None:
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("wake-up listener lost its connection; polling meanwhile")
                await asyncio.sleep(1.0)
