"""The LISTEN helper against a real PostgreSQL: notices arrive, and a killed connection is
replaced without losing the listener."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import pytest

from shared.db.listen import listen_forever
from shared.settings import DatabaseSettings
from shared.testing import eventually

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return condition()

    await eventually(probe, timeout=10)


async def _notify(dsn: str, channel: str, payload: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


async def test_notices_arrive_and_the_listener_survives_a_killed_connection(
    database_settings: DatabaseSettings,
) -> None:
    dsn = database_settings.dsn
    heard: list[tuple[str, str]] = []
    connected = asyncio.Event()
    task = asyncio.create_task(
        listen_forever(
            dsn,
            ["test_listen_a", "test_listen_b"],
            lambda channel, payload: heard.append((channel, payload)),
            name="test",
            connected=connected,
            max_backoff_s=0.5,
        )
    )
    try:
        await asyncio.wait_for(connected.wait(), 10)
        await _notify(dsn, "test_listen_a", "one")
        await _notify(dsn, "test_listen_b", "two")
        await _notify(dsn, "test_listen_other", "not ours")
        await _until(lambda: len(heard) >= 2)
        assert heard == [("test_listen_a", "one"), ("test_listen_b", "two")]

        # What a database restart or a network cut does to the listening connection.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
            cur = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                # The last statement of the listener's backend names this test's channel.
                " WHERE query = 'LISTEN \"test_listen_b\"' AND datname = current_database()"
            )
            assert [row[0] for row in await cur.fetchall()], "the listener's backend was found"
        await _until(lambda: not connected.is_set())
        await asyncio.wait_for(connected.wait(), 10)
        await _notify(dsn, "test_listen_a", "after")
        await _until(lambda: heard[-1:] == [("test_listen_a", "after")])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_cancelling_ends_the_listener_even_while_it_retries() -> None:
    from shared.testing import free_port

    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/none?connect_timeout=1"
    task = asyncio.create_task(
        listen_forever(unreachable, ["x"], lambda *_: None, name="test", max_backoff_s=0.2)
    )
    await asyncio.sleep(0.5)  # a few failed connection attempts
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
