"""One contract for the cache stores, run against the in-process store and a real Redis; and
what a Redis that is down does to a cache (every lookup misses, nothing raises)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel, ValidationError

from shared.cache import CacheSettings, CacheStore, MemoryStore, NamedCache, RedisStore
from shared.testing import free_port


class Entry(BaseModel):
    text: str
    n: int


class StoreContract:
    async def test_get_returns_what_was_set_until_it_expires(self, store: CacheStore) -> None:
        assert await store.get("k1") is None
        await store.set("k1", b"value", ttl_s=0.3)
        assert await store.get("k1") == b"value"
        await asyncio.sleep(0.45)
        assert await store.get("k1") is None

    async def test_set_overwrites_and_delete_removes(self, store: CacheStore) -> None:
        await store.set("k2", b"one", ttl_s=60)
        await store.set("k2", b"two", ttl_s=60)
        assert await store.get("k2") == b"two"
        await store.delete("k2")
        assert await store.get("k2") is None

    async def test_drop_tag_removes_exactly_the_tagged_keys(self, store: CacheStore) -> None:
        await store.set("a", b"1", ttl_s=60, tags=["doc:x"])
        await store.set("b", b"2", ttl_s=60, tags=["doc:x", "doc:y"])
        await store.set("c", b"3", ttl_s=60, tags=["doc:y"])
        assert await store.drop_tag("doc:x") == 2
        assert await store.get("a") is None and await store.get("b") is None
        assert await store.get("c") == b"3"
        assert await store.drop_tag("doc:x") == 0

    async def test_named_cache_round_trips_and_counts(self, store: CacheStore) -> None:
        cache = NamedCache("answer", store, Entry, ttl_s=60)
        assert await cache.get("q") is None
        await cache.put("q", Entry(text="hi", n=3), tags=["d1"])
        assert await cache.get("q") == Entry(text="hi", n=3)
        assert (cache.hits, cache.misses) == (1, 1)
        other = NamedCache("retrieval", store, Entry, ttl_s=60)
        assert await other.get("q") is None  # names are separate key spaces
        assert await cache.drop_tag("d1") == 1
        assert await cache.get("q") is None

    async def test_a_value_of_another_shape_is_a_miss(self, store: CacheStore) -> None:
        await store.set("answer:old", b'{"unexpected": true}', ttl_s=60)
        assert await NamedCache("answer", store, Entry, ttl_s=60).get("old") is None

    async def test_disabled_cache_never_hits_nor_stores(self, store: CacheStore) -> None:
        cache = NamedCache("answer", store, Entry, ttl_s=60, enabled=False)
        await cache.put("off", Entry(text="x", n=1))
        assert await store.get("answer:off") is None
        assert await cache.get("off") is None


@pytest.mark.unit
class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> CacheStore:
        return MemoryStore()

    async def test_bounded_least_recently_used_first(self) -> None:
        store = MemoryStore(max_entries=2)
        await store.set("a", b"1", ttl_s=60)
        await store.set("b", b"2", ttl_s=60)
        assert await store.get("a") == b"1"  # a is now the most recent
        await store.set("c", b"3", ttl_s=60)
        assert await store.get("b") is None and await store.get("a") == b"1"


@pytest.mark.integration
class TestRedisStore(StoreContract):
    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[CacheStore]:
        store = RedisStore(redis_url, namespace=f"test-{uuid.uuid4().hex[:10]}")
        assert await store.ping()
        yield store
        await store.close()

    async def test_two_replicas_share_entries(self, redis_url: str) -> None:
        ns = f"test-{uuid.uuid4().hex[:10]}"
        one, two = RedisStore(redis_url, namespace=ns), RedisStore(redis_url, namespace=ns)
        try:
            await one.set("shared", b"v", ttl_s=60, tags=["doc:z"])
            assert await two.get("shared") == b"v"
            assert await two.drop_tag("doc:z") == 1
            assert await one.get("shared") is None
        finally:
            await one.close()
            await two.close()


@pytest.mark.integration
async def test_redis_down_every_operation_misses_and_nothing_raises() -> None:
    closed = free_port()  # nothing listens there
    store = RedisStore(f"redis://127.0.0.1:{closed}/0", timeout_s=0.2)
    cache = NamedCache("answer", store, Entry, ttl_s=60)
    started = time.monotonic()
    await cache.put("q", Entry(text="x", n=1), tags=["d"])
    assert await cache.get("q") is None
    assert await cache.drop_tag("d") == 0
    await store.delete("q")
    assert await store.ping() is False
    assert store.errors == 4
    assert cache.misses == 1
    assert time.monotonic() - started < 3  # fails fast, no retry loop inside the request
    await store.close()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"CACHE_ANSWER_TTL_S": "-1"}, "answer_ttl_s"),
        ({"CACHE_TIMEOUT_S": "soon"}, "timeout_s"),
        ({"CACHE_NAMESPACE": "has spaces"}, "namespace"),
    ],
)
def test_malformed_cache_setting_names_the_field(
    env: dict[str, str], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=field):
        CacheSettings()


@pytest.mark.unit
def test_redis_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/2")
    assert CacheSettings().redis_url == "redis://127.0.0.1:6379/2"
    monkeypatch.delenv("REDIS_URL")
    assert CacheSettings().redis_url is None
