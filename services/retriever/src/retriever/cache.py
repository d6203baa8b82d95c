"""The retrieval cache: (query, permission scope, index version, pipeline) → results.

The key holds everything that decides an answer: the normalised query, the principal's
:class:`~retriever.index.AccessScope` (two principals with equal scopes read exactly the same
chunks, so a hit never crosses a permission boundary), the index version (every write changes
it, so a hit never outlives a re-ingest) and the pipeline's settings. Hits and misses are
Prometheus counters, with the hit ratio as a gauge, on the service's ``/metrics``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Generic, TypeVar

from cachetools import TTLCache
from prometheus_client import CollectorRegistry, Counter, Gauge

from .index import AccessScope

__all__ = ["RetrievalCache"]

T = TypeVar("T")


class RetrievalCache(Generic[T]):
    def __init__(
        self, *, max_entries: int, ttl_s: float, registry: CollectorRegistry | None = None
    ) -> None:
        self._entries: TTLCache[str, T] = TTLCache(maxsize=max_entries, ttl=ttl_s)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe
        self.hits = 0
        self.misses = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._lookups = Counter(
            "retriever_cache_lookups",
            "Retrieval cache lookups by result.",
            ["result"],
            registry=registry,
        )
        self._hits = self._lookups.labels(result="hit")
        self._misses = self._lookups.labels(result="miss")
        ratio = Gauge(
            "retriever_cache_hit_ratio",
            "Share of retrieval cache lookups answered from the cache since start.",
            registry=registry,
        )
        ratio.set_function(self.hit_ratio)

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
        (self._hits if found is not None else self._misses).inc()
        return found

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
