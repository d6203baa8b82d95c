"""Per-tenant rate limits on tool calls: token buckets that hold across agent replicas.

``PostgresRateLimiter`` keeps each bucket as one row (migration 0004) and refills and takes a
token in one statement, so concurrent replicas serialise on the row lock and never hand out
more than the bucket holds. ``InMemoryRateLimiter`` is the same algorithm for one process
(tests, single-replica tools); both pass the same contract tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.db import Pool

__all__ = [
    "BucketLimit",
    "InMemoryRateLimiter",
    "PostgresRateLimiter",
    "RateDecision",
    "RateLimiter",
]


@dataclass(frozen=True)
class BucketLimit:
    per_second: float
    burst: int


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float = 0.0


class RateLimiter(Protocol):
    async def acquire(self, tenant_id: str, bucket: str, limit: BucketLimit) -> RateDecision: ...


_TAKE = """
INSERT INTO agent.rate_buckets AS b (tenant_id, bucket, tokens, updated_at)
VALUES (%(tenant)s, %(bucket)s, %(burst)s - 1, clock_timestamp())
ON CONFLICT (tenant_id, bucket) DO UPDATE
SET tokens = LEAST(%(burst)s::float8,
                   b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * %(rate)s) - 1,
    updated_at = clock_timestamp()
WHERE LEAST(%(burst)s::float8,
            b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at) * %(rate)s) >= 1
RETURNING tokens
"""

_LEVEL = """
SELECT LEAST(%(burst)s::float8,
             tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated_at) * %(rate)s) AS tokens
FROM agent.rate_buckets WHERE tenant_id = %(tenant)s AND bucket = %(bucket)s
"""


class PostgresRateLimiter:
    def __init__(self, pool: Callable[[], Pool]) -> None:
        # A callable: the pool opens at service start-up, after this object is built.
        self._pool = pool

    async def acquire(self, tenant_id: str, bucket: str, limit: BucketLimit) -> RateDecision:
        params = {
            "tenant": tenant_id,
            "bucket": bucket,
            "burst": limit.burst,
            "rate": limit.per_second,
        }
        async with self._pool().connection() as conn:
            cur = await conn.execute(_TAKE, params)
            if await cur.fetchone() is not None:
                return RateDecision(True)
            cur = await conn.execute(_LEVEL, params)
            row = await cur.fetchone()
        tokens = float(row["tokens"]) if row else 0.0
        return RateDecision(False, retry_after_s=max(0.0, (1 - tokens) / limit.per_second))


class InMemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    async def acquire(self, tenant_id: str, bucket: str, limit: BucketLimit) -> RateDecision:
        now = self._clock()
        tokens, at = self._buckets.get((tenant_id, bucket), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_second)
        if tokens < 1:
            self._buckets[(tenant_id, bucket)] = (tokens, now)
            return RateDecision(False, retry_after_s=(1 - tokens) / limit.per_second)
        self._buckets[(tenant_id, bucket)] = (tokens - 1, now)
        return RateDecision(True)
