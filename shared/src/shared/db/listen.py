"""LISTEN on PostgreSQL channels for as long as the process runs, reconnecting after a loss.

Notifications are hints in this platform: every listener's owner also polls, so a notice
lost while the connection was down costs one poll interval, never a wrong result. That is
why a lost connection is only logged (once per outage, not once per attempt) and retried
with a capped exponential backoff (tenacity), and why ``connected`` is cleared meanwhile:
owners that wait for the listener (tests, health) can see it is down.

Used by the gateway's progress hub and the approver's wake-up listener. The approver's outbox
relay keeps its own loop on purpose: it LISTENs on the connection that holds its advisory
lock, so losing that connection must stop the relaying (another replica may take the lock),
which a transparent reconnect would hide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import NoReturn

import psycopg
from psycopg import sql
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
)

__all__ = ["listen_forever"]

log = logging.getLogger(__name__)


async def listen_forever(
    dsn: str,
    channels: Sequence[str],
    on_notice: Callable[[str, str], None],
    *,
    name: str,
    connected: asyncio.Event | None = None,
    max_backoff_s: float = 5.0,
) -> NoReturn:
    """Call ``on_notice(channel, payload)`` for every notification on ``channels``.

    Runs until cancelled. ``name`` says whose listener it is in the log.
    """
    down = False

    def lost(_retry_state: object = None) -> None:
        nonlocal down
        if connected is not None:
            connected.clear()
        if not down:
            down = True
            log.warning("%s listener lost its connection; polling until it is back", name)

    async def session() -> None:
        nonlocal down
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            for channel in channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            if down:
                log.info("%s listener reconnected", name)
            down = False
            if connected is not None:
                connected.set()
            try:
                async for notice in conn.notifies():
                    on_notice(notice.channel, notice.payload)
            except Exception as exc:
                raise _WasConnected from exc
        raise _WasConnected("the notification stream ended")

    while True:
        # A fresh backoff after each connection that worked: an outage next week starts again
        # at the shortest wait instead of where the last one left off.
        try:
            async for attempt in AsyncRetrying(
                # Exception only: a cancellation (BaseException) must end the loop, which
                # tenacity would otherwise retry like any other failure.
                retry=retry_if_exception_type(Exception)
                & retry_if_not_exception_type(_WasConnected),
                wait=wait_exponential(multiplier=0.2, max=max_backoff_s),
                before_sleep=lost,
                reraise=True,
            ):
                with attempt:
                    await session()
        except _WasConnected:
            lost()
            await asyncio.sleep(0.2)  # a connection that drops at once must not spin


class _WasConnected(Exception):
    """The connection worked, then was lost: reconnect with the backoff reset."""
