"""BM25 term weights as sparse vectors; the index applies IDF (``Modifier.Idf``).

qdrant-edge's own BM25 encoder does the tokenising, stop words and Snowball stemming, so
documents and queries are always processed the same way, in Rust.
"""

from __future__ import annotations

import qdrant_edge as qe

from .index import SparseVec

__all__ = ["Bm25Encoder"]


class Bm25Encoder:
    def __init__(self, *, k: float = 1.2, b: float = 0.75, avg_len: float = 256.0) -> None:
        self._model = qe.Bm25(qe.Bm25Config(k=k, b=b, avg_len=avg_len, language="english"))

    def document(self, text: str) -> SparseVec:
        vec = self._model.embed_document(text)
        return SparseVec(tuple(vec.indices), tuple(vec.values))

    def query(self, text: str) -> SparseVec:
        vec = self._model.embed_query(text)
        return SparseVec(tuple(vec.indices), tuple(vec.values))
