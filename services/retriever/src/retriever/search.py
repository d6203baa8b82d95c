"""Hybrid search: BM25 and dense candidates under the permission filter, fused, reranked.

1. candidates: a sparse (BM25 with IDF) and a dense (MiniLM cosine) search, each a query of
   the index with the principal's scope as its filter, ``candidates`` hits each;
2. fusion: a pure function of the two score maps over their union: a weighted sum of per-query
   z-scores by default (min-max or RRF on request);
3. rerank: the ``depth`` best fused candidates (by default all of them) rescored by the rerank
   port, whose z-score is added with ``weight``: with the default weights the final score is
   the plain sum of the BM25, dense and sentence z-scores, the measured best (rag-pipeline.md).

Every stage's ranking is kept on request, so the benchmark can score each alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.principal import Principal

from .embedding import Embedder, EmbeddingUnavailable, Vectors
from .index import AccessScope, ChunkIndex
from .ingest import sentences_of
from .metrics import RetrieverMetrics, timed
from .ranking import Normalisation, Reranker, RerankUnavailable, fuse, mix_rerank, ranked
from .settings import RankingSettings, RerankSettings
from .sparse import Bm25Encoder

__all__ = ["HybridSearcher", "RankedChunk", "SearchResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankedChunk:
    payload: Mapping[str, Any]
    score: float
    stage_scores: dict[str, float]
    #: The chunk's sentences and their cosine to the query, when asked for (the reader's cue).
    sentences: tuple[tuple[str, float], ...] = ()

    @property
    def chunk_id(self) -> str:
        return str(self.payload["chunk_id"])


@dataclass(frozen=True)
class SearchResult:
    chunks: list[RankedChunk]
    candidates: int
    latency_ms: float
    index_version: str
    #: Stages that could not run (``dense``, ``rerank``): the result is still permitted.
    degraded: tuple[str, ...] = ()
    #: Chunk ids best first per stage (bm25, dense, fused, reranked), when asked for.
    stages: dict[str, list[str]] = field(default_factory=dict)


class HybridSearcher:
    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        bm25: Bm25Encoder,
        reranker: Reranker,
        *,
        ranking: RankingSettings,
        rerank: RerankSettings,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.bm25 = bm25
        self.reranker = reranker
        self.ranking = ranking
        self.rerank_settings = rerank
        #: Stage timings (set by the service; None for the CLI and benches).
        self.metrics: RetrieverMetrics | None = None

    @property
    def signature(self) -> str:
        """Everything about the pipeline that changes results (part of the cache key)."""
        return (
            f"{self.embedder.model_name}|{self.ranking.model_dump_json()}"
            f"|{self.reranker.name}|{self.rerank_settings.depth}|{self.rerank_settings.weight}"
        )

    def search(
        self,
        query: str,
        principal: Principal | AccessScope,
        top_k: int,
        *,
        keep_stages: bool = False,
        query_vector: Vectors | None = None,
        embed: bool = True,
        explain_sentences: bool = False,
    ) -> SearchResult:
        """``query_vector``: the query's vector when the caller has it (from the embedding
        cache); ``embed=False`` with no vector: the embedder already failed for this query,
        so the dense stage is skipped without asking it again."""
        started = time.perf_counter()
        scope = principal if isinstance(principal, AccessScope) else AccessScope.of(principal)
        version = self.index.version
        limit = max(self.ranking.candidates, top_k)
        degraded: list[str] = []

        vector: Vectors | None = query_vector
        if vector is None and not embed:
            degraded = ["dense"]
        elif vector is None:
            try:
                with timed(self.metrics, "embed"):
                    vector = self.embedder.embed_query(query)
            except EmbeddingUnavailable as exc:
                # Keyword search alone still answers, and is still filtered by permissions.
                log.warning("dense stage skipped: %s", exc)
                vector, degraded = None, ["dense"]
        with timed(self.metrics, "search"):
            sparse_hits = self.index.search_sparse(self.bm25.query(query), scope, limit)
            dense_hits = self.index.search_dense(vector, scope, limit) if vector is not None else []
            stage_scores = {
                "bm25": {h.chunk_id: h.score for h in sparse_hits},
                "dense": {h.chunk_id: h.score for h in dense_hits},
            }
            fused = fuse(stage_scores["bm25"], stage_scores["dense"], self.ranking)
            order = ranked(fused)

        depth = order[: self.rerank_settings.depth]
        rerank_scores: dict[str, float] = {}
        try:
            with timed(self.metrics, "rerank"):
                rerank_scores = self.reranker.rerank(query, vector, depth, scope)
        except RerankUnavailable as exc:
            log.warning("rerank stage skipped: %s", exc)
            degraded.append("rerank")
        how: Normalisation = "minmax" if self.ranking.fusion == "minmax" else "zscore"
        final = mix_rerank(fused, rerank_scores, weight=self.rerank_settings.weight, how=how)
        final_order = ranked(final)

        # Only the chunks returned need their text and metadata: fetch those (same filter).
        full = self.index.payloads(final_order[:top_k], scope)
        chunks = []
        for chunk_id in final_order[:top_k]:
            if chunk_id not in full:  # deleted since the search: nothing to cite
                continue
            scores = {
                s: stage_scores[s][chunk_id] for s in stage_scores if chunk_id in stage_scores[s]
            }
            scores["fused"] = fused[chunk_id]
            if chunk_id in rerank_scores:
                scores["rerank"] = rerank_scores[chunk_id]
            chunks.append(RankedChunk(full[chunk_id], final[chunk_id], scores))
        if explain_sentences and vector is not None:
            chunks = self._with_sentences(chunks, vector)
        stages = {}
        if keep_stages:
            stages = {
                "bm25": [h.chunk_id for h in sparse_hits],
                "dense": [h.chunk_id for h in dense_hits],
                "fused": order,
                "reranked": final_order,
            }
        return SearchResult(
            chunks=chunks,
            candidates=len(fused),
            latency_ms=(time.perf_counter() - started) * 1000,
            index_version=version,
            degraded=tuple(degraded),
            stages=stages,
        )

    def _with_sentences(self, chunks: list[RankedChunk], vector: Vectors) -> list[RankedChunk]:
        """Each chunk's sentences with their similarity to the query. The sentences are split
        and embedded exactly as at ingest, so the embedding cache answers without the model;
        if the embedder fails, the chunks go out without them (the reader falls back to
        words)."""
        split = [sentences_of(str(c.payload.get("text", ""))) for c in chunks]
        flat = [s for group in split for s in group]
        if not flat:
            return chunks
        try:
            similarity = self.embedder.embed(flat) @ vector
        except EmbeddingUnavailable as exc:
            log.warning("sentence similarities skipped: %s", exc)
            return chunks
        out, at = [], 0
        for chunk, group in zip(chunks, split, strict=True):
            scored = tuple(
                (text, round(float(similarity[at + i]), 6)) for i, text in enumerate(group)
            )
            at += len(group)
            out.append(replace(chunk, sentences=scored))
        return out
