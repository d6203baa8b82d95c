"""Ingestion through the product's pipeline with the fake adapters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retriever.documents import DocumentError, discover, load_bytes, load_many
from retriever.embedding import CachedEmbedder, EmbeddingUnavailable, HashingEmbedder, Vectors
from retriever.engine import Engine, build_engine
from retriever.index.memory import MemoryChunkIndex
from retriever.ingest import sentences_of
from retriever.settings import RetrieverSettings

pytestmark = pytest.mark.unit

META = {
    "tenant": "acme",
    "allowed_roles": ["support"],
    "min_level": "L1",
    "classification": "internal",
}


def doc(doc_id: str, text: str, **meta: str):  # type: ignore[no-untyped-def]
    return load_bytes(
        text.encode(),
        name=f"{doc_id}.md",
        source_uri=f"test://{doc_id}",
        metadata={**META, "doc_id": doc_id, **meta},
        max_bytes=100_000,
    )


def test_kb_ingests_once_then_skips_unchanged(memory_engine: Engine, knowledge_base: Path) -> None:
    files = list(discover(knowledge_base))
    ticks: list[int] = []
    first = memory_engine.ingestor.ingest(load_many(files, max_bytes=10**7), progress=ticks.append)
    assert len(first.indexed) == 39 and not first.failed
    assert sum(ticks) == len(files)
    chunks = memory_engine.index.count()
    assert chunks == first.chunks > 39
    again = memory_engine.ingestor.ingest(load_many(files, max_bytes=10**7))
    assert (len(again.indexed), len(again.unchanged)) == (0, 39)
    assert memory_engine.index.count() == chunks


def test_every_chunk_carries_its_metadata(memory_engine: Engine, knowledge_base: Path) -> None:
    memory_engine.ingestor.ingest(
        load_many([knowledge_base / "harborpine" / "hp-l2-dsar-handling.md"], max_bytes=10**7)
    )
    [(key, info)] = memory_engine.index.documents().items()
    assert (
        key == ("harborpine", "hp-l2-dsar-handling") and info.classification.value == "confidential"
    )
    hits = memory_engine.index._docs[key]
    for chunk in hits:
        payload = chunk.payload()
        assert set(payload) >= {
            "doc_id",
            "doc_version",
            "title",
            "section_path",
            "source_uri",
            "tenant_id",
            "allowed_roles",
            "min_level",
            "classification",
            "updated_at",
        }
        assert payload["min_level"] == "L2" and payload["allowed_roles"] == ["support"]
        assert payload["updated_at"].startswith("2026-")
        assert payload["section_path"], "chunks sit under the document's headings"
        assert chunk.sentences.shape[0] >= 1


def test_changed_document_replaces_and_prune_deletes(memory_engine: Engine) -> None:
    ing = memory_engine.ingestor
    ing.ingest([doc("a", "# A\n\nfirst version"), doc("b", "# B\n\nother")])
    report = ing.ingest([doc("a", "# A\n\nsecond version")], prune_missing=True)
    assert report.indexed == ["acme/a"] and report.deleted == ["acme/b"]
    texts = [c.text for c in memory_engine.index._docs[("acme", "a")]]
    assert texts == ["second version"]
    assert ing.delete(("acme", "a")) == 1 and memory_engine.index.count() == 0


def test_bad_sources_are_named_and_the_rest_goes_in(memory_engine: Engine) -> None:
    broken = DocumentError(
        "unreadable PDF: PdfReadError: EOF marker not found", source="/kb/broken.pdf"
    )
    report = memory_engine.ingestor.ingest(
        [doc("a", "fine"), broken, doc("a", "duplicate"), doc("c", "also fine")]
    )
    assert report.indexed == ["acme/a", "acme/c"]
    assert "/kb/broken.pdf: unreadable PDF" in report.failed["/kb/broken.pdf"]
    assert any("duplicate doc_id acme/a" in e for e in report.failed.values())


class FlakyEmbedder(HashingEmbedder):
    def embed(self, texts: Sequence[str]) -> Vectors:
        raise EmbeddingUnavailable("embeddings API: APIConnectionError")


def test_embedding_outage_indexes_nothing_partial(settings: RetrieverSettings) -> None:
    engine = build_engine(settings, embedder=FlakyEmbedder(), index=MemoryChunkIndex())
    engine.index.replace_document(("acme", "a"), [])
    report = engine.ingestor.ingest([doc("a", "text"), doc("b", "more")])
    assert report.indexed == [] and len(report.failed) == 2
    assert all("not embedded" in e for e in report.failed.values())
    assert engine.index.count() == 0


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded += len(texts)
        return super().embed(texts)


def test_embedding_cache_is_keyed_by_content_and_model(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path / "cache")
    first = cached.embed(["alpha text", "beta text"])
    again = cached.embed(["beta text", "gamma text"])
    assert inner.embedded == 3 and (cached.hits, cached.misses) == (1, 3)
    np.testing.assert_array_equal(first[1], again[0])
    cached.close()
    reopened = CachedEmbedder(inner, tmp_path / "cache")  # persistent across processes
    reopened.embed(["alpha text"])
    assert inner.embedded == 3
    other_model = CachedEmbedder(HashingEmbedder(dim=32), tmp_path / "cache")
    assert other_model.embed(["alpha text"]).shape == (1, 32)
    assert other_model.misses == 1


def test_sentences_of_a_chunk() -> None:
    assert sentences_of("Tents dry fast. Ok. Store them loosely!\n- item one\n- two") == [
        "Tents dry fast. Ok.",
        "Store them loosely!",
        "- item one - two",
    ]
