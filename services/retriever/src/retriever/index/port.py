"""What the retriever needs from a vector index, independent of the engine.

The index does candidate generation only: a dense and a sparse (BM25) nearest-neighbour
search, each with the principal's :class:`AccessScope` as a filter *of the index query*, so
a chunk the principal may not read is never a candidate. Fusion and reranking happen above.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from shared.principal import Classification, Principal, StaffLevel

__all__ = ["AccessScope", "ChunkIndex", "ChunkRecord", "Hit", "SparseVec", "point_id"]

_POINT_NAMESPACE = uuid.UUID("0d6f8f3e-6f0b-4c1a-8f76-2d7c3a9b5e42")


def point_id(chunk_id: str) -> str:
    """Qdrant point ids must be ints or UUIDs: derive a UUID from the chunk id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


@dataclass(frozen=True)
class SparseVec:
    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk with its access metadata and vectors, ready to index."""

    chunk_id: str
    doc_id: str
    doc_version: str
    title: str
    section_path: tuple[str, ...]
    source_uri: str
    text: str
    tenant_id: str
    allowed_roles: tuple[str, ...]
    min_level: StaffLevel
    classification: Classification
    updated_at: datetime | None
    position: int
    dense: npt.NDArray[np.float32] = field(repr=False, compare=False)
    sparse: SparseVec = field(repr=False, compare=False)

    def payload(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "doc_version": self.doc_version,
            "title": self.title,
            "section_path": list(self.section_path),
            "source_uri": self.source_uri,
            "text": self.text,
            "tenant_id": self.tenant_id,
            "allowed_roles": list(self.allowed_roles),
            "min_level": self.min_level.value,
            "classification": self.classification.value,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "position": self.position,
        }


@dataclass(frozen=True)
class AccessScope:
    """Everything that decides what a principal may read, as index filter values."""

    tenant_id: str
    roles: tuple[str, ...]
    levels: tuple[str, ...]
    classifications: tuple[str, ...]

    @classmethod
    def of(cls, principal: Principal) -> AccessScope:
        return cls(
            tenant_id=principal.tenant_id,
            roles=principal.roles,
            levels=tuple(level.value for level in principal.level.levels_up_to()),
            classifications=tuple(c.value for c in principal.clearance.readable_up_to()),
        )

    def admits(self, payload: Mapping[str, Any]) -> bool:
        """The same rule as the index filter, for assertions in tests and audits."""
        return (
            payload["tenant_id"] == self.tenant_id
            and bool(set(payload["allowed_roles"]) & set(self.roles))
            and payload["min_level"] in self.levels
            and payload["classification"] in self.classifications
        )


@dataclass(frozen=True)
class Hit:
    payload: Mapping[str, Any]
    score: float


class ChunkIndex(Protocol):
    @property
    def version(self) -> str:
        """Changes whenever the indexed content changes (keys the retrieval cache)."""
        ...

    def replace_document(self, doc_id: str, chunks: Sequence[ChunkRecord]) -> None:
        """Make ``chunks`` the document's only chunks. A concurrent search sees either the
        old chunks or the new ones, never both and never neither."""
        ...

    def delete_document(self, doc_id: str) -> int:
        """Remove every chunk of the document; return how many were removed."""
        ...

    def document_versions(self) -> dict[str, str]:
        """doc_id → indexed version, to skip unchanged documents on re-ingest."""
        ...

    def search_dense(
        self, vector: npt.NDArray[np.float32], scope: AccessScope, limit: int
    ) -> list[Hit]: ...

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]: ...

    def count(self) -> int: ...

    def close(self) -> None: ...
