"""The read path's degraded modes and the pluggable cross-encoder API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retriever.documents import discover, load_many
from retriever.embedding import EmbeddingUnavailable, HashingEmbedder, Vectors
from retriever.engine import Engine, build_engine
from retriever.index.memory import MemoryChunkIndex
from retriever.settings import EmbeddingSettings, RerankSettings, RetrieverSettings
from shared.principal import Principal, StaffLevel
from shared.testing import JsonStub, StubReply

CUSTOMER = Principal(
    user_id="c", tenant_id="harborpine", roles=("customer",), level=StaffLevel.NONE
)
QUESTION = "How do I dry my tent after a trip?"


class QueryOutage(HashingEmbedder):
    def embed_query(self, text: str) -> Vectors:
        raise EmbeddingUnavailable("embeddings API: APITimeoutError")


def engine_with(knowledge_base: Path, embedder: HashingEmbedder, **settings: Any) -> Engine:
    engine = build_engine(
        RetrieverSettings(embedding=EmbeddingSettings(cache=False), **settings),
        embedder=embedder,
        index=MemoryChunkIndex(),
    )
    engine.ingestor.ingest(load_many(discover(knowledge_base / "harborpine"), max_bytes=10**7))
    return engine


@pytest.mark.unit
def test_embedding_outage_degrades_to_bm25_and_is_not_cached(knowledge_base: Path) -> None:
    engine = engine_with(knowledge_base, QueryOutage())
    first = engine.retriever.retrieve(QUESTION, CUSTOMER, 5)
    assert first.result.degraded == ("dense",)
    assert first.result.chunks[0].payload["doc_id"] == "hp-tent-care"
    assert all(c.payload["classification"] == "public" for c in first.result.chunks)
    assert engine.retriever.retrieve(QUESTION, CUSTOMER, 5).cache_hit is False


class FakeRerankAPI(JsonStub):
    """``POST /rerank`` in Text Embeddings Inference's shape: scores by word overlap."""

    def __init__(self, *, fail: bool = False) -> None:
        def respond(request: JsonStub.Request) -> StubReply:
            query = set(request.body["query"].lower().split())
            rows = [
                {"index": i, "score": len(query & set(t.lower().split())) / 10}
                for i, t in enumerate(request.body["texts"])
            ]
            return (503 if fail else 200), rows

        super().__init__(respond)
        self.rerank_url = f"{self.url}/rerank"

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]


@pytest.fixture
def rerank_api() -> Iterator[FakeRerankAPI]:
    with FakeRerankAPI() as api:
        yield api


@pytest.mark.integration
def test_cross_encoder_api_is_pluggable_and_sees_only_permitted_text(
    knowledge_base: Path, rerank_api: FakeRerankAPI
) -> None:
    rerank = RerankSettings(provider="api", api_url=rerank_api.rerank_url, depth=10, weight=1.0)
    engine = engine_with(knowledge_base, HashingEmbedder(), rerank=rerank)
    result = engine.retriever.retrieve(QUESTION, CUSTOMER, 5).result
    assert result.degraded == () and "rerank" in result.chunks[0].stage_scores
    [body] = rerank_api.bodies
    assert body["query"] == QUESTION and len(body["texts"]) == 10
    assert all("L2" not in t for t in body["texts"])


@pytest.mark.integration
def test_rerank_outage_keeps_the_fused_order(knowledge_base: Path) -> None:
    with FakeRerankAPI(fail=True) as api:
        rerank = RerankSettings(provider="api", api_url=api.rerank_url, timeout_s=2)
        engine = engine_with(knowledge_base, HashingEmbedder(), rerank=rerank)
        result = engine.retriever.retrieve(QUESTION, CUSTOMER, 5).result
        assert api.requests, "the reranker was asked"
    assert result.degraded == ("rerank",) and result.chunks


class PassageOutage(HashingEmbedder):
    """Queries embed; passages (the sentences scored at query time) do not."""

    broken = False

    def embed(self, texts: Any) -> Vectors:
        if self.broken:
            raise EmbeddingUnavailable("embeddings API: APITimeoutError")
        return super().embed(texts)


@pytest.mark.unit
def test_read_path_ships_each_sentence_with_its_similarity(knowledge_base: Path) -> None:
    embedder = PassageOutage()
    engine = engine_with(knowledge_base, embedder)
    chunks = engine.retriever.retrieve(QUESTION, CUSTOMER, 3).result.chunks
    assert chunks and all(c.sentences for c in chunks)
    query = embedder.embed_query(QUESTION)
    text, similarity = chunks[0].sentences[0]
    assert text in str(chunks[0].payload["text"])
    assert similarity == pytest.approx(float(embedder.embed([text])[0] @ query), abs=1e-5)
    # The searcher alone (the benchmarks' path) does not pay for it.
    assert not engine.searcher.search(QUESTION, CUSTOMER, 3).chunks[0].sentences
    # If the sentences cannot be embedded the chunks still go out, without similarities.
    embedder.broken = True
    engine.retriever.cache = None
    degraded = engine.retriever.retrieve(QUESTION, CUSTOMER, 3).result.chunks
    assert degraded and not any(c.sentences for c in degraded)
