"""Fixtures of the retriever's tests: the sample knowledge base, principals, small documents,
and engines built through the composition code with fast adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retriever.embedding import HashingEmbedder
from retriever.engine import Engine, build_engine
from retriever.index import ChunkRecord, SparseVec
from retriever.index.memory import MemoryChunkIndex
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.principal import Classification, Principal, StaffLevel

REPO = Path(__file__).resolve().parents[3]
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"


@pytest.fixture(scope="session")
def knowledge_base() -> Path:
    return KNOWLEDGE_BASE


def person(tenant: str, roles: tuple[str, ...], level: StaffLevel, user: str = "u") -> Principal:
    return Principal(user_id=user, tenant_id=tenant, roles=roles, level=level)


@pytest.fixture
def settings(tmp_path: Path) -> RetrieverSettings:
    return RetrieverSettings(
        embedding=EmbeddingSettings(cache_dir=tmp_path / "embedding-cache"),
    )


@pytest.fixture
def memory_engine(settings: RetrieverSettings) -> Iterator[Engine]:
    """In-memory index and hashing embedder: the unit-test engine, built like production."""
    engine = build_engine(settings, embedder=HashingEmbedder(), index=MemoryChunkIndex())
    yield engine
    engine.close()


ChunkFactory = Callable[..., ChunkRecord]


@pytest.fixture
def make_chunk() -> ChunkFactory:
    """A chunk with vectors from the hashing embedder, so similar texts score higher."""
    embedder = HashingEmbedder()

    def make(
        text: str,
        *,
        doc_id: str = "doc",
        tenant: str = "acme",
        roles: tuple[str, ...] = ("support",),
        level: StaffLevel = StaffLevel.NONE,
        classification: Classification = Classification.PUBLIC,
        version: str = "v1",
        position: int = 0,
        **extra: Any,
    ) -> ChunkRecord:
        words = text.lower().split()
        vocabulary = {w: abs(hash(w)) % 100_000 for w in words}
        indices = tuple(sorted(set(vocabulary.values())))
        sentences = [s for s in text.split(". ") if s] or [text]
        return ChunkRecord(
            chunk_id=f"{tenant}/{doc_id}@{version}#{position}",
            doc_id=doc_id,
            doc_version=version,
            title=extra.get("title", doc_id),
            section_path=extra.get("section_path", ()),
            source_uri=f"test://{doc_id}",
            text=text,
            tenant_id=tenant,
            allowed_roles=roles,
            min_level=level,
            classification=classification,
            updated_at=None,
            position=position,
            dense=embedder.embed_query(text),
            sparse=SparseVec(indices, tuple(1.0 for _ in indices)),
            sentences=embedder.embed(sentences).astype(np.float32),
        )

    return make
