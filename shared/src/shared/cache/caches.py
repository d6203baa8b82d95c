"""Named caches over a store: typed values, TTL per cache, lookups and hits counted.

A :class:`NamedCache` serialises one pydantic type as JSON under ``<name>:<key>``. Lookups are
counted per cache name and result on the service's ``/metrics``
(``platform_cache_lookups_total{cache, result}``), so a hit rate per cache is one PromQL
division; the cache name is a fixed label, never a key or a question.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Generic, TypeVar

from opentelemetry import metrics
from pydantic import BaseModel, ValidationError

from .settings import CacheSettings
from .store import CacheStore, MemoryStore, RedisStore

__all__ = ["CacheMetrics", "NamedCache", "digest", "open_store"]

M = TypeVar("M", bound=BaseModel)


def digest(*parts: str) -> str:
    """A fixed-length key from its parts: no question text is ever stored as a key."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def open_store(settings: CacheSettings) -> CacheStore:
    """Redis when ``REDIS_URL`` is set, this process's memory otherwise."""
    if settings.redis_url:
        return RedisStore(
            settings.redis_url, namespace=settings.namespace, timeout_s=settings.timeout_s
        )
    return MemoryStore(max_entries=settings.max_entries)


class CacheMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self.lookups = meter.create_counter(
            "platform_cache_lookups",
            description="Cache lookups by cache (embedding, retrieval, answer) and result.",
        )

    def lookup(self, cache: str, hit: bool) -> None:
        self.lookups.add(1, {"cache": cache, "result": "hit" if hit else "miss"})


class NamedCache(Generic[M]):
    def __init__(
        self,
        name: str,
        store: CacheStore,
        model: type[M],
        *,
        ttl_s: float,
        enabled: bool = True,
        metrics: CacheMetrics | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self._model = model
        self.ttl_s = ttl_s
        self.enabled = enabled
        self._metrics = metrics
        self.hits = 0
        self.misses = 0

    def _key(self, key: str) -> str:
        return f"{self.name}:{key}"

    async def get(self, key: str) -> M | None:
        if not self.enabled:
            return None
        raw = await self.store.get(self._key(key))
        value: M | None = None
        if raw is not None:
            try:
                value = self._model.model_validate_json(raw)
            except ValidationError:
                # Written by an older release with another shape: a miss, overwritten on put.
                value = None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        if self._metrics is not None:
            self._metrics.lookup(self.name, value is not None)
        return value

    async def put(self, key: str, value: M, *, tags: Iterable[str] = ()) -> None:
        if not self.enabled:
            return
        data = value.model_dump_json().encode()
        await self.store.set(
            self._key(key), data, self.ttl_s, tags=[f"{self.name}:{t}" for t in tags]
        )

    async def drop_tag(self, tag: str) -> int:
        return await self.store.drop_tag(f"{self.name}:{tag}")

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
