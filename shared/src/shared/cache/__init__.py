"""Caches shared across replicas (Redis) or per process, with one contract for both."""

from .answers import AnswerCache, CachedAnswer, document_tag, normalise_question
from .caches import CacheMetrics, NamedCache, digest, open_store
from .settings import CacheSettings
from .store import CacheStore, MemoryStore, RedisStore

__all__ = [
    "AnswerCache",
    "CacheMetrics",
    "CacheSettings",
    "CacheStore",
    "CachedAnswer",
    "MemoryStore",
    "NamedCache",
    "RedisStore",
    "digest",
    "document_tag",
    "normalise_question",
    "open_store",
]
