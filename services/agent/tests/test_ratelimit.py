"""One contract for the rate limiters: the in-memory fake and PostgreSQL pass the same tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from agent.ratelimit import BucketLimit, InMemoryRateLimiter, PostgresRateLimiter, RateLimiter
from shared.db import open_pool
from shared.settings import DatabaseSettings


class RateLimiterContract:
    @pytest.fixture
    def limiter(self) -> RateLimiter:
        raise NotImplementedError

    async def test_a_burst_passes_then_calls_are_refused_with_a_retry_hint(
        self, limiter: RateLimiter
    ) -> None:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        limit = BucketLimit(per_second=0.5, burst=3)
        decisions = [await limiter.acquire(tenant, "read", limit) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert 0 < decisions[-1].retry_after_s <= 2.0

    async def test_tenants_and_buckets_are_independent(self, limiter: RateLimiter) -> None:
        a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
        limit = BucketLimit(per_second=0.01, burst=1)
        assert (await limiter.acquire(a, "read", limit)).allowed
        assert not (await limiter.acquire(a, "read", limit)).allowed
        assert (await limiter.acquire(a, "propose", limit)).allowed
        assert (await limiter.acquire(b, "read", limit)).allowed

    async def test_tokens_come_back_over_time(self, limiter: RateLimiter) -> None:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        limit = BucketLimit(per_second=20, burst=1)
        assert (await limiter.acquire(tenant, "read", limit)).allowed
        assert not (await limiter.acquire(tenant, "read", limit)).allowed
        await asyncio.sleep(0.08)
        assert (await limiter.acquire(tenant, "read", limit)).allowed


@pytest.mark.unit
class TestInMemoryRateLimiter(RateLimiterContract):
    @pytest.fixture
    def limiter(self) -> RateLimiter:
        return InMemoryRateLimiter()


@pytest.mark.integration
class TestPostgresRateLimiter(RateLimiterContract):
    @pytest.fixture
    async def limiter(self, database_settings: DatabaseSettings) -> AsyncIterator[RateLimiter]:
        pool = await open_pool(database_settings, name="ratelimit-test")
        try:
            yield PostgresRateLimiter(lambda: pool)
        finally:
            await pool.close()

    async def test_the_limit_holds_across_replicas(
        self, database_settings: DatabaseSettings
    ) -> None:
        """Two replicas (two pools) hammering one tenant's bucket hand out exactly the burst."""
        pools = [await open_pool(database_settings, name=f"replica-{i}") for i in range(2)]
        try:
            replicas = [PostgresRateLimiter(lambda p=p: p) for p in pools]
            tenant = f"t-{uuid.uuid4().hex[:8]}"
            limit = BucketLimit(per_second=0.001, burst=10)
            decisions = await asyncio.gather(
                *(replicas[i % 2].acquire(tenant, "propose", limit) for i in range(30))
            )
            assert sum(d.allowed for d in decisions) == 10
        finally:
            for pool in pools:
                await pool.close()
