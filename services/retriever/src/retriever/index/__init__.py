"""The chunk index port and its adapters: embedded qdrant-edge (default), the Qdrant server
through qdrant-client, and an in-memory fake for unit tests."""

from .layout import IndexLayout, LayoutMismatch
from .port import AccessScope, ChunkIndex, ChunkRecord, DocKey, Hit, IndexedDocument, SparseVec

__all__ = [
    "AccessScope",
    "ChunkIndex",
    "ChunkRecord",
    "DocKey",
    "Hit",
    "IndexLayout",
    "IndexedDocument",
    "LayoutMismatch",
    "SparseVec",
]
