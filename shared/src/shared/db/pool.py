"""The psycopg 3 async connection pool every stateful service uses."""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from shared.settings import DatabaseSettings

__all__ = ["Pool", "open_pool"]

#: A pool whose connections return rows as dicts: every repository reads columns by name.
Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[DictRow]]


async def open_pool(settings: DatabaseSettings, *, name: str) -> Pool:
    """Open a pool and wait until it holds a working connection.

    ``wait()`` makes start-up fail fast and loudly when the database is unreachable, instead
    of the first message failing later.
    """
    pool: Pool = AsyncConnectionPool(
        settings.dsn,
        connection_class=AsyncConnection[DictRow],
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        name=name,
        open=False,
        timeout=settings.connect_timeout_s,
        kwargs={"row_factory": dict_row, "autocommit": False, "application_name": name},
    )
    await pool.open(wait=True, timeout=settings.connect_timeout_s)
    return pool
