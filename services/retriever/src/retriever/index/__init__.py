"""The chunk index port and its adapters (embedded qdrant-edge, Qdrant server)."""

from .port import AccessScope, ChunkIndex, ChunkRecord, Hit, SparseVec

__all__ = ["AccessScope", "ChunkIndex", "ChunkRecord", "Hit", "SparseVec"]
