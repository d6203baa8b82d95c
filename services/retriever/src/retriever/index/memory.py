"""An in-memory index in plain NumPy: the fake for unit tests.

It implements the port by brute force with the same scoring rules as Qdrant (cosine, BM25
sparse dot product with Qdrant's IDF, MaxSim), and passes the same contract tests as the real
adapters, so tests that use it cannot drift from what production does.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .port import (
    CANDIDATE_FIELDS,
    AccessScope,
    ChunkRecord,
    DocKey,
    Hit,
    IndexedDocument,
    SparseVec,
    Vectors,
)
from .records import check_chunks, documents_from_payloads

__all__ = ["MemoryChunkIndex"]


class MemoryChunkIndex:
    def __init__(self) -> None:
        self._docs: dict[DocKey, tuple[ChunkRecord, ...]] = {}
        self._lock = threading.Lock()
        self._changes = itertools.count(1)
        self._version = "mem-0"

    @property
    def version(self) -> str:
        return self._version

    def replace_document(self, key: DocKey, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(key, chunks)
        with self._lock:
            if chunks:
                self._docs[key] = tuple(chunks)
            else:
                self._docs.pop(key, None)
            self._version = f"mem-{next(self._changes)}"

    def delete_document(self, key: DocKey) -> int:
        with self._lock:
            removed = self._docs.pop(key, ())
            if removed:
                self._version = f"mem-{next(self._changes)}"
        return len(removed)

    def documents(self, tenant_id: str | None = None) -> dict[DocKey, IndexedDocument]:
        with self._lock:
            chunks = [
                c for key, cs in self._docs.items() for c in cs if tenant_id in (None, key[0])
            ]
        return documents_from_payloads(c.payload() for c in chunks)

    def _visible(self, scope: AccessScope) -> list[ChunkRecord]:
        return [c for cs in self._docs.values() for c in cs if scope.admits(c.payload())]

    def search_dense(self, vector: Vectors, scope: AccessScope, limit: int) -> list[Hit]:
        with self._lock:
            scored = [(float(np.dot(c.dense, vector)), c) for c in self._visible(scope)]
        return _top(scored, limit)

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        with self._lock:
            everything = [c for cs in self._docs.values() for c in cs]
            df = Counter(i for c in everything for i in set(c.sparse.indices))
            n = len(everything)
            query = dict(zip(vector.indices, vector.values, strict=True))
            scored = []
            for chunk in self._visible(scope):
                score = sum(
                    query[i] * v * _idf(n, df[i])
                    for i, v in zip(chunk.sparse.indices, chunk.sparse.values, strict=True)
                    if i in query
                )
                if score > 0:
                    scored.append((score, chunk))
        return _top(scored, limit)

    def sentence_scores(
        self, vector: Vectors, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, float]:
        wanted = set(chunk_ids)
        with self._lock:
            return {
                c.chunk_id: float(np.max(c.sentences @ vector))
                for c in self._visible(scope)
                if c.chunk_id in wanted
            }

    def payloads(
        self, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, Mapping[str, Any]]:
        wanted = set(chunk_ids)
        with self._lock:
            return {c.chunk_id: c.payload() for c in self._visible(scope) if c.chunk_id in wanted}

    def count(self) -> int:
        with self._lock:
            return sum(len(cs) for cs in self._docs.values())

    def close(self) -> None:
        with self._lock:
            self._docs.clear()


def _idf(n: int, df: int) -> float:
    """Qdrant's IDF modifier."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def _top(scored: list[tuple[float, ChunkRecord]], limit: int) -> list[Hit]:
    scored.sort(key=lambda s: (-s[0], s[1].chunk_id))
    return [
        Hit(c.chunk_id, score, {k: v for k, v in c.payload().items() if k in CANDIDATE_FIELDS})
        for score, c in scored[:limit]
    ]
