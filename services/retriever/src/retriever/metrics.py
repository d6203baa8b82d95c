"""The retriever's metrics (OpenTelemetry instruments on ``/metrics``).

- ``retriever.stage.duration`` (``retriever_stage_duration_seconds{stage}``): ``embed`` (the
  query's vector, when the model runs), ``search`` (the sparse and dense index queries and
  their fusion), ``rerank``, ``cache`` (the shared caches' lookups of one request);
- ``retriever.chunks.returned`` (``retriever_chunks_returned``): chunks handed to the agent
  per request;
- ``retriever.requests`` (``retriever_requests_total{hit}``): requests, ``hit="true"`` when at
  least one returned chunk is relevant: its dense cosine to the query at least
  ``RETRIEVER_RELEVANCE_THRESHOLD`` (when the dense stage could not run: a keyword match).
  The hit rate is ``hit="true"`` over all.

Per-cache lookups and hits are ``platform_cache_lookups_total`` (``shared.cache``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from opentelemetry import metrics

if TYPE_CHECKING:
    from .search import RankedChunk

__all__ = ["RetrieverMetrics", "Stage", "is_hit", "timed"]

Stage = Literal["embed", "search", "rerank", "cache"]

#: Seconds: an index query takes about a millisecond, a model embedding tens of them.
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
CHUNK_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 10, 15, 20, 30, 50)


def is_hit(chunks: Sequence[RankedChunk], threshold: float) -> bool:
    """At least one chunk is relevant: dense cosine >= ``threshold``, or, for a chunk the
    dense stage did not score (it was down), a keyword match."""
    for chunk in chunks:
        dense = chunk.stage_scores.get("dense")
        if dense is not None and dense >= threshold:
            return True
        if dense is None and chunk.stage_scores.get("bm25", 0.0) > 0:
            return True
    return False


class RetrieverMetrics:
    def __init__(self, meter: metrics.Meter, *, relevance_threshold: float) -> None:
        self.relevance_threshold = relevance_threshold
        self._stages = meter.create_histogram(
            "retriever.stage.duration",
            unit="s",
            description="Duration of each retrieval stage (embed, search, rerank, cache).",
            explicit_bucket_boundaries_advisory=list(STAGE_BUCKETS),
        )
        self._chunks = meter.create_histogram(
            "retriever.chunks.returned",
            description="Chunks returned per request.",
            explicit_bucket_boundaries_advisory=list(CHUNK_BUCKETS),
        )
        self._requests = meter.create_counter(
            "retriever.requests",
            unit="{request}",
            description="Retrieval requests, by hit (at least one chunk above the relevance"
            " threshold).",
        )

    def stage_took(self, stage: Stage, seconds: float) -> None:
        self._stages.record(max(0.0, seconds), {"stage": stage})

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_took(stage, time.perf_counter() - started)

    def request(self, ranked: Sequence[RankedChunk], returned: int) -> None:
        """One request: ``ranked`` what the search found, ``returned`` the chunks the agent
        gets (after the document screen may have withheld some)."""
        self._chunks.record(returned)
        hit = returned > 0 and is_hit(ranked, self.relevance_threshold)
        self._requests.add(1, {"hit": "true" if hit else "false"})


@contextmanager
def timed(metrics_: RetrieverMetrics | None, stage: Stage) -> Iterator[None]:
    """``metrics_.stage(stage)``, or nothing when the caller (a CLI, a bench) has no metrics."""
    if metrics_ is None:
        yield
        return
    with metrics_.stage(stage):
        yield
