"""Caches shared across replicas (Redis) or per process, with one contract for both."""

from .caches import CacheMetrics, NamedCache, digest, open_store
from .settings import CacheSettings
from .store import CacheStore, MemoryStore, RedisStore

__all__ = [
    "CacheMetrics",
    "CacheSettings",
    "CacheStore",
    "MemoryStore",
    "NamedCache",
    "RedisStore",
    "digest",
    "open_store",
]
