"""The retriever's caches shared across replicas: query embeddings and retrieval results.

Both sit on :mod:`shared.cache` (Redis when ``REDIS_URL`` is set, in process otherwise), so a
question one replica answered is a hit on every other. Keys, and why each part is there:

- embedding: the embedding model and the query text. Only the vector is stored, under a hash of
  the text: the question itself is never written anywhere.
- retrieval: the normalised query, the principal's :class:`~retriever.index.AccessScope`
  (equal scopes read exactly the same chunks, so a hit never crosses a permission boundary),
  the tenant's *content version* (see :meth:`RetrieverCaches.content_version`), the pipeline
  signature and ``top_k``.

The content version is a digest of the tenant's indexed documents and their versions. Unlike
the index's own version (a per-process counter), it is equal on every replica holding the same
documents and survives a restart, and a re-ingest that changes a document changes it, so no
hit outlives a change. Degraded results (a stage down) are never stored.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel

from shared.cache import CacheMetrics, CacheSettings, CacheStore, NamedCache, digest

from .index import AccessScope, ChunkIndex
from .search import RankedChunk, SearchResult

__all__ = ["CachedSearch", "CachedVector", "RetrieverCaches"]


class CachedVector(BaseModel):
    values: list[float]


class _CachedChunk(BaseModel):
    payload: dict[str, Any]
    score: float
    stage_scores: dict[str, float]
    #: Each sentence and its cosine to the query: the reader's cue, kept so a cache hit
    #: answers exactly as the search it replaces.
    sentences: list[tuple[str, float]] = []


class CachedSearch(BaseModel):
    chunks: list[_CachedChunk]
    candidates: int
    index_version: str

    @classmethod
    def of(cls, result: SearchResult) -> CachedSearch:
        return cls(
            chunks=[
                _CachedChunk(
                    payload=dict(c.payload),
                    score=c.score,
                    stage_scores=c.stage_scores,
                    sentences=list(c.sentences),
                )
                for c in result.chunks
            ],
            candidates=result.candidates,
            index_version=result.index_version,
        )

    def result(self, *, latency_ms: float, index_version: str) -> SearchResult:
        return SearchResult(
            chunks=[
                RankedChunk(c.payload, c.score, c.stage_scores, tuple(c.sentences))
                for c in self.chunks
            ],
            candidates=self.candidates,
            latency_ms=latency_ms,
            index_version=index_version,
        )


class RetrieverCaches:
    def __init__(
        self, store: CacheStore, settings: CacheSettings, metrics: CacheMetrics | None = None
    ) -> None:
        on = settings.enabled
        self.store = store
        self.embedding = NamedCache(
            "embedding",
            store,
            CachedVector,
            ttl_s=settings.embedding_ttl_s,
            enabled=on,
            metrics=metrics,
        )
        self.retrieval = NamedCache(
            "retrieval",
            store,
            CachedSearch,
            ttl_s=settings.retrieval_ttl_s,
            enabled=on,
            metrics=metrics,
        )
        self._versions: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    @staticmethod
    def embedding_key(model: str, text: str) -> str:
        return digest(model, text)

    @staticmethod
    def retrieval_key(
        text: str, scope: AccessScope, content_version: str, pipeline: str, top_k: int
    ) -> str:
        return digest(text, scope.key, content_version, pipeline, str(top_k))

    def content_version(self, index: ChunkIndex, tenant_id: str) -> str:
        """Digest of the tenant's documents and versions, computed once per index change."""
        memo = (index.version, tenant_id)
        with self._lock:
            found = self._versions.get(memo)
        if found is not None:
            return found
        docs = index.documents(tenant_id)
        version = digest(*(f"{k[1]}={d.version}" for k, d in sorted(docs.items())))[:16]
        with self._lock:
            if len(self._versions) > 1024:  # old index versions are never asked for again
                self._versions.clear()
            self._versions[memo] = version
        return version
