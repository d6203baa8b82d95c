"""The read path's degraded modes and the pluggable cross-encoder API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from retriever.documents import discover, load_many
from retriever.embedding import EmbeddingUnavailable, HashingEmbedder, Vectors
from retriever.engine import Engine, build_engine
from retriever.index.memory import MemoryChunkIndex
from retriever.settings import EmbeddingSettings, RerankSettings, RetrieverSettings
from shared.principal import Principal, StaffLevel

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


class FakeRerankAPI:
    """``POST /rerank`` in Text Embeddings Inference's shape: scores by word overlap."""

    def __init__(self, *, fail: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.bodies.append(body)
                query = set(body["query"].lower().split())
                rows = [
                    {"index": i, "score": len(query & set(t.lower().split())) / 10}
                    for i, t in enumerate(body["texts"])
                ]
                raw = json.dumps(rows).encode()
                self.send_response(503 if fail else 200)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rerank"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def rerank_api() -> Iterator[FakeRerankAPI]:
    api = FakeRerankAPI()
    yield api
    api.server.shutdown()
    api.server.server_close()


@pytest.mark.integration
def test_cross_encoder_api_is_pluggable_and_sees_only_permitted_text(
    knowledge_base: Path, rerank_api: FakeRerankAPI
) -> None:
    rerank = RerankSettings(provider="api", api_url=rerank_api.url, depth=10, weight=1.0)
    engine = engine_with(knowledge_base, HashingEmbedder(), rerank=rerank)
    result = engine.retriever.retrieve(QUESTION, CUSTOMER, 5).result
    assert result.degraded == () and "rerank" in result.chunks[0].stage_scores
    [body] = rerank_api.bodies
    assert body["query"] == QUESTION and len(body["texts"]) == 10
    assert all("L2" not in t for t in body["texts"])


@pytest.mark.integration
def test_rerank_outage_keeps_the_fused_order(knowledge_base: Path) -> None:
    api = FakeRerankAPI(fail=True)
    try:
        rerank = RerankSettings(provider="api", api_url=api.url, timeout_s=2)
        engine = engine_with(knowledge_base, HashingEmbedder(), rerank=rerank)
        result = engine.retriever.retrieve(QUESTION, CUSTOMER, 5).result
    finally:
        api.server.shutdown()
        api.server.server_close()
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
