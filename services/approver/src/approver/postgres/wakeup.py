"""Wake a loop when another transaction commits work for it (PostgreSQL LISTEN/NOTIFY).

A notification is only a hint: every loop also polls, so a lost one costs the poll interval.
The reconnecting LISTEN loop itself is the platform's one (:func:`shared.db.listen`).
"""

from __future__ import annotations

import asyncio

from shared.db.listen import listen_forever

__all__ = ["Listener"]


class Listener:
    def __init__(self, dsn: str, channels: dict[str, asyncio.Event]) -> None:
        self._dsn = dsn
        self._channels = channels

    def _wake(self, channel: str, _payload: str) -> None:
        event = self._channels.get(channel)
        if event is not None:
            event.set()

    async def run(self) -> None:
        await listen_forever(self._dsn, list(self._channels), self._wake, name="approver wake-up")
