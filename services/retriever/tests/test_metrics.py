"""The retriever's /metrics after requests through its composition root: stage timings,
chunks returned, hit rate, cache lookups, HTTP metrics of the admin API, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from retriever.metrics import is_hit
from retriever.search import RankedChunk
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.contracts import Topic
from shared.settings import KafkaSettings
from shared.testing import eventually, sample_value, scrape

from .test_service import L1, Harness, running_harness

pytestmark = pytest.mark.unit


@pytest.fixture
async def harness(knowledge_base: Path) -> AsyncIterator[Harness]:
    # The hashing embedder's cosines run higher than MiniLM's: 0.57 for the tent question's
    # best chunk, 0.44 for gibberish.
    settings = RetrieverSettings(
        kafka=KafkaSettings(), embedding=EmbeddingSettings(cache=False), relevance_threshold=0.5
    )
    async with running_harness(settings, knowledge_base) as h:
        yield h


async def test_every_retriever_metric_is_on_metrics_with_its_labels(harness: Harness) -> None:
    await harness.ask("How long do I have to return a tent?", L1)
    await harness.ask("How long do I have to return a tent?", L1)  # the retrieval cache hits
    await harness.ask("zzqx vvbnm", L1)  # nothing relevant
    listed = await harness.client.get(
        "/v1/knowledge/documents", headers=harness.bearer(("knowledge-admin",), "L1")
    )
    await harness.service.broker.publish(
        b"not json", topic=harness.service.settings.kafka.topic(Topic.REQUEST)
    )

    async def dead_lettered() -> str | None:
        text = (await harness.client.get("/metrics")).text
        found = sample_value(
            text, "platform_dead_letters_total", topic="request", reason="malformed_json"
        )
        return text if found == 1 else None

    text = await eventually(dead_lettered, timeout=5)
    samples = scrape(text)

    stages = {s["stage"] for s in samples["retriever_stage_duration_seconds_count"]}
    assert stages >= {"embed", "search", "rerank", "cache"}
    assert sample_value(text, "retriever_chunks_returned_count") == 3
    assert sample_value(text, "retriever_chunks_returned_sum") > 0
    assert sample_value(text, "retriever_requests_total", hit="true") == 2
    assert sample_value(text, "retriever_requests_total", hit="false") == 1
    assert {s["result"] for s in samples["platform_cache_lookups_total"]} >= {"hit", "miss"}

    http = samples["http_server_request_duration_seconds_count"]
    assert {
        (s["http_route"], s["http_request_method"], s["http_response_status_code"]) for s in http
    } >= {("/v1/knowledge/documents", "GET", str(listed.status_code))}


def test_a_hit_needs_a_chunk_above_the_threshold_or_a_keyword_match_without_dense() -> None:
    def chunk(**scores: float) -> RankedChunk:
        return RankedChunk({"chunk_id": "c"}, 1.0, dict(scores))

    assert is_hit([chunk(bm25=2.0, dense=0.1), chunk(dense=0.31)], 0.3)
    assert not is_hit([chunk(bm25=2.0, dense=0.1)], 0.3)
    assert is_hit([chunk(bm25=1.5)], 0.3), "the dense stage was down: a keyword match counts"
    assert not is_hit([], 0.3)
