"""What the retriever needs from a vector index, independent of the engine.

The index does candidate generation and candidate scoring only: a dense and a sparse (BM25)
nearest-neighbour search, a sentence-level MaxSim score for given candidates, and the full
payloads of the few chunks finally returned, each with the principal's :class:`AccessScope` as
a filter *of the index query*, so a chunk the principal may not read is never a candidate.
Fusion and reranking happen above, in pure code. Searches return lean hits (the fields in
:data:`CANDIDATE_FIELDS`): copying a hundred chunk texts per stage out of the engine would
cost more than the search itself.

Documents are keyed by ``(tenant_id, doc_id)``: two tenants may use the same ``doc_id`` and
never touch each other's chunks.
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

__all__ = [
    "CANDIDATE_FIELDS",
    "AccessScope",
    "ChunkIndex",
    "ChunkRecord",
    "DocKey",
    "Hit",
    "IndexedDocument",
    "SparseVec",
    "point_id",
]

Vectors = npt.NDArray[np.float32]
DocKey = tuple[str, str]

#: The payload fields a search hit carries; :meth:`ChunkIndex.payloads` gives the rest.
CANDIDATE_FIELDS = ("chunk_id", "doc_id", "tenant_id", "doc_version")

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
    dense: Vectors = field(repr=False, compare=False)
    sparse: SparseVec = field(repr=False, compare=False)
    #: One unit vector per sentence of the chunk (at least one row), for MaxSim rescoring.
    sentences: Vectors = field(repr=False, compare=False)
    #: The document screen's verdict at ingest (``shared.guardrails.documents``), if screened.
    injection: dict[str, Any] | None = field(default=None, compare=False)

    def payload(self) -> dict[str, Any]:
        extra = {} if self.injection is None else {"injection": self.injection}
        return extra | {
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
    """Everything that decides what a principal may read, as index filter values.

    Two principals with equal scopes read exactly the same chunks, so the retrieval cache is
    keyed by it (see :meth:`key`).
    """

    tenant_id: str
    roles: tuple[str, ...]
    levels: tuple[str, ...]
    classifications: tuple[str, ...]

    @classmethod
    def of(cls, principal: Principal) -> AccessScope:
        return cls(
            tenant_id=principal.tenant_id,
            roles=tuple(sorted(principal.roles)),
            levels=tuple(level.value for level in principal.level.levels_up_to()),
            classifications=tuple(c.value for c in principal.clearance.readable_up_to()),
        )

    @property
    def key(self) -> str:
        return "|".join(
            (
                self.tenant_id,
                ",".join(self.roles),
                ",".join(self.levels),
                ",".join(self.classifications),
            )
        )

    def admits(self, payload: Mapping[str, Any]) -> bool:
        """The same rule as the index filter, for the in-memory index and for assertions."""
        return (
            payload["tenant_id"] == self.tenant_id
            and bool(set(payload["allowed_roles"]) & set(self.roles))
            and payload["min_level"] in self.levels
            and payload["classification"] in self.classifications
        )


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    score: float
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class IndexedDocument:
    """What the index knows about a document without reading its chunks."""

    version: str
    classification: Classification
    min_level: StaffLevel
    chunks: int


class ChunkIndex(Protocol):
    @property
    def version(self) -> str:
        """Changes whenever the indexed content changes (keys the retrieval cache)."""
        ...

    def replace_document(self, key: DocKey, chunks: Sequence[ChunkRecord]) -> None:
        """Make ``chunks`` the document's only chunks. A concurrent search sees either the
        old chunks or the new ones, never both and never neither."""
        ...

    def delete_document(self, key: DocKey) -> int:
        """Remove every chunk of the document; return how many were removed."""
        ...

    def documents(self, tenant_id: str | None = None) -> dict[DocKey, IndexedDocument]:
        """Indexed documents (of one tenant, or all), to skip unchanged ones and to authorise
        replacements."""
        ...

    def search_dense(self, vector: Vectors, scope: AccessScope, limit: int) -> list[Hit]: ...

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]: ...

    def sentence_scores(
        self, vector: Vectors, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, float]:
        """MaxSim of the query vector against each candidate's sentence vectors."""
        ...

    def payloads(
        self, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, Mapping[str, Any]]:
        """Full payloads (text, title, section path, access metadata) of readable chunks."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...
