"""What every read path goes through: query hygiene, then the cache, then the searcher.

The service's path (:meth:`Retriever.aretrieve`) uses the caches shared across replicas
(:mod:`retriever.shared_caches`); the synchronous path (the CLI, benchmarks) keeps the
in-process :class:`~retriever.cache.RetrievalCache`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace

import numpy as np

from shared.pricing import estimate_tokens
from shared.principal import Principal

from .cache import RetrievalCache
from .embedding import EmbeddingUnavailable, Vectors
from .index import AccessScope
from .metrics import Stage
from .query import check_query
from .search import HybridSearcher, SearchResult
from .settings import QuerySettings
from .shared_caches import CachedSearch, CachedVector, RetrieverCaches

__all__ = ["Retrieval", "Retriever"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retrieval:
    result: SearchResult
    cache_hit: bool = False
    #: Why the query was not searched (empty_query, query_too_long, ...), if it was not.
    rejected: str | None = None
    #: Tokens embedded for the query (0 when its vector or the whole result was cached).
    embedding_tokens: int = 0
    embedding_cache_hit: bool = False
    #: Digest of the tenant's indexed documents (the caches' notion of "same index").
    content_version: str = ""


class Retriever:
    def __init__(
        self,
        searcher: HybridSearcher,
        *,
        query: QuerySettings,
        cache: RetrievalCache[SearchResult] | None,
        shared: RetrieverCaches | None = None,
    ) -> None:
        self.searcher = searcher
        self.query_settings = query
        self.cache = cache
        self.shared = shared

    def retrieve(self, query: str, principal: Principal, top_k: int) -> Retrieval:
        started = time.perf_counter()
        checked = check_query(
            query,
            max_chars=self.query_settings.max_chars,
            min_supported_share=self.query_settings.min_supported_script_share,
        )
        if checked.rejected is not None:
            empty = SearchResult(
                chunks=[],
                candidates=0,
                latency_ms=(time.perf_counter() - started) * 1000,
                index_version=self.searcher.index.version,
            )
            return Retrieval(empty, rejected=checked.rejected)
        scope = AccessScope.of(principal)
        if self.cache is None:
            return Retrieval(self._search(checked.text, scope, top_k))
        key = RetrievalCache.key(
            checked.text, scope, self.searcher.index.version, self.searcher.signature, top_k
        )
        cached = self.cache.get(key)
        if cached is not None:
            latency = (time.perf_counter() - started) * 1000
            return Retrieval(replace(cached, latency_ms=latency), cache_hit=True)
        result = self._search(checked.text, scope, top_k)
        if not result.degraded:  # a degraded answer is not worth keeping once the stage is back
            self.cache.put(key, result)
        return Retrieval(result)

    async def aretrieve(self, query: str, principal: Principal, top_k: int) -> Retrieval:
        """The service's read path: the shared caches first, the search off the event loop."""
        started = time.perf_counter()
        checked = check_query(
            query,
            max_chars=self.query_settings.max_chars,
            min_supported_share=self.query_settings.min_supported_script_share,
        )
        caches = self.shared
        if checked.rejected is not None or caches is None:
            return await asyncio.to_thread(self.retrieve, query, principal, top_k)
        searcher = self.searcher
        scope = AccessScope.of(principal)
        version = searcher.index.version
        content = await asyncio.to_thread(
            caches.content_version, searcher.index, principal.tenant_id
        )
        key = caches.retrieval_key(checked.text, scope, content, searcher.signature, top_k)
        lookup_started = time.perf_counter()
        cached = await caches.retrieval.get(key)
        if cached is not None:
            self._took("cache", lookup_started)
            latency = (time.perf_counter() - started) * 1000
            return Retrieval(
                cached.result(latency_ms=latency, index_version=version),
                cache_hit=True,
                content_version=content,
            )
        model = searcher.embedder.model_name
        vector_key = caches.embedding_key(model, checked.text)
        hit = await caches.embedding.get(vector_key)
        self._took("cache", lookup_started)
        vector: Vectors | None = None
        tokens = 0
        embed_failed = False
        if hit is not None and len(hit.values) == searcher.embedder.dim:
            vector = np.asarray(hit.values, dtype=np.float32)
        else:
            embed_started = time.perf_counter()
            try:
                vector = await asyncio.to_thread(searcher.embedder.embed_query, checked.text)
                self._took("embed", embed_started)
            except EmbeddingUnavailable as exc:
                log.warning("dense stage skipped: %s", exc)
                embed_failed = True
            else:
                tokens = estimate_tokens(checked.text)
                flat = np.asarray(vector, dtype=np.float32).reshape(-1)
                await caches.embedding.put(vector_key, CachedVector(values=flat.tolist()))
        result = await asyncio.to_thread(
            searcher.search,
            checked.text,
            scope,
            top_k,
            query_vector=vector,
            embed=not embed_failed,
            explain_sentences=True,
        )
        if not result.degraded:  # a degraded answer is not worth keeping once the stage is back
            await caches.retrieval.put(key, CachedSearch.of(result))
        return Retrieval(
            replace(result, latency_ms=(time.perf_counter() - started) * 1000),
            embedding_tokens=tokens,
            embedding_cache_hit=hit is not None and vector is not None and tokens == 0,
            content_version=content,
        )

    def _took(self, stage: Stage, started: float) -> None:
        metrics = self.searcher.metrics
        if metrics is not None:
            metrics.stage_took(stage, time.perf_counter() - started)

    def _search(self, text: str, scope: AccessScope, top_k: int) -> SearchResult:
        # The read path hands chunks to a reader: it gets each sentence's similarity too.
        return self.searcher.search(text, scope, top_k, explain_sentences=True)
