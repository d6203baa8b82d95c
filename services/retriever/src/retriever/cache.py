"""The retrieval cache: (query, permission scope, index version, pipeline) → results.

The key holds everything that decides an answer: the normalised query, the principal's
:class:`~retriever.index.AccessScope` (two principals with equal scopes read exactly the same
chunks, so a hit never crosses a permission boundary), the index version (every write changes
it, so a hit never outlives a re-ingest) and the pipeline's settings. Hits and misses are
exported as a Prometheus counter, with the hit ratio as a gauge, on the service's ``/metrics``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from cachetools import TTLCache
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .index import AccessScope

__all__ = ["RetrievalCache"]

T = TypeVar("T")


class RetrievalCache(Generic[T]):
    def __init__(self, *, max_entries: int, ttl_s: float) -> None:
        self._entries: TTLCache[str, T] = TTLCache(maxsize=max_entries, ttl=ttl_s)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(query: str, scope: AccessScope, index_version: str, pipeline: str, top_k: int) -> str:
        parts = (query, scope.key, index_version, pipeline, str(top_k))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def get(self, key: str) -> T | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
            else:
                self.hits += 1
        return found

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._entries[key] = value

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def export(self, registry: CollectorRegistry) -> None:
        """Publish lookups by result and the hit ratio on ``registry`` (the service's)."""
        registry.register(_CacheCollector(self))


class _CacheCollector(Collector):
    def __init__(self, cache: RetrievalCache[Any]) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "retriever_cache_lookups", "Retrieval cache lookups by result.", labels=["result"]
        )
        lookups.add_metric(["hit"], self._cache.hits)
        lookups.add_metric(["miss"], self._cache.misses)
        yield lookups
        yield GaugeMetricFamily(
            "retriever_cache_hit_ratio",
            "Share of retrieval cache lookups answered from the cache since start.",
            value=self._cache.hit_ratio(),
        )
