"""What every read path goes through: query hygiene, then the cache, then the searcher."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from shared.principal import Principal

from .cache import RetrievalCache
from .index import AccessScope
from .query import check_query
from .search import HybridSearcher, SearchResult
from .settings import QuerySettings

__all__ = ["Retrieval", "Retriever"]


@dataclass(frozen=True)
class Retrieval:
    result: SearchResult
    cache_hit: bool = False
    #: Why the query was not searched (empty_query, query_too_long, ...), if it was not.
    rejected: str | None = None


class Retriever:
    def __init__(
        self,
        searcher: HybridSearcher,
        *,
        query: QuerySettings,
        cache: RetrievalCache[SearchResult] | None,
    ) -> None:
        self.searcher = searcher
        self.query_settings = query
        self.cache = cache

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

    def _search(self, text: str, scope: AccessScope, top_k: int) -> SearchResult:
        # The read path hands chunks to a reader: it gets each sentence's similarity too.
        return self.searcher.search(text, scope, top_k, explain_sentences=True)
