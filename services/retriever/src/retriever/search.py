"""Hybrid search: dense and BM25 candidates under the permission filter, fused."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.principal import Principal

from .embedding import Embedder
from .index import AccessScope, ChunkIndex
from .sparse import Bm25Encoder

__all__ = ["HybridSearcher", "RankedChunk", "SearchResult"]


@dataclass(frozen=True)
class RankedChunk:
    payload: Mapping[str, Any]
    score: float
    stage_scores: dict[str, float]


@dataclass(frozen=True)
class SearchResult:
    chunks: list[RankedChunk]
    candidates: int
    latency_ms: float
    index_version: str


class HybridSearcher:
    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        bm25: Bm25Encoder,
        *,
        candidates: int = 50,
        rrf_k: int = 60,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.bm25 = bm25
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(self, query: str, principal: Principal, top_k: int) -> SearchResult:
        started = time.perf_counter()
        scope = AccessScope.of(principal)
        version = self.index.version
        dense_hits = self.index.search_dense(
            self.embedder.embed_query(query), scope, self.candidates
        )
        sparse_hits = self.index.search_sparse(self.bm25.query(query), scope, self.candidates)
        fused: dict[str, RankedChunk] = {}
        for stage, hits in (("dense", dense_hits), ("bm25", sparse_hits)):
            for rank, hit in enumerate(hits):
                key = str(hit.payload["chunk_id"])
                prior = fused.get(key)
                contribution = 1.0 / (self.rrf_k + rank + 1)
                if prior is None:
                    fused[key] = RankedChunk(hit.payload, contribution, {stage: hit.score})
                else:
                    fused[key] = RankedChunk(
                        prior.payload,
                        prior.score + contribution,
                        {**prior.stage_scores, stage: hit.score},
                    )
        ranked = sorted(fused.values(), key=lambda c: c.score, reverse=True)[:top_k]
        return SearchResult(
            chunks=ranked,
            candidates=len(fused),
            latency_ms=(time.perf_counter() - started) * 1000,
            index_version=version,
        )
