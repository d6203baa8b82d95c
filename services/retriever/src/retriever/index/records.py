"""Helpers every index adapter shares: input checks and document summaries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.principal import Classification, StaffLevel

from .port import ChunkRecord, DocKey, IndexedDocument

__all__ = ["check_chunks", "documents_from_payloads"]


def check_chunks(key: DocKey, chunks: Sequence[ChunkRecord]) -> None:
    """Refuse a replacement that would mix documents, versions or tenants."""
    tenant_id, doc_id = key
    versions = {c.doc_version for c in chunks}
    if len(versions) > 1:
        raise ValueError(f"chunks of {key} carry several versions: {sorted(versions)}")
    for chunk in chunks:
        if (chunk.tenant_id, chunk.doc_id) != (tenant_id, doc_id):
            raise ValueError(f"chunk {chunk.chunk_id} does not belong to {key}")
        if chunk.sentences.ndim != 2 or chunk.sentences.shape[0] == 0:
            raise ValueError(f"chunk {chunk.chunk_id} needs at least one sentence vector")
    if len({c.chunk_id for c in chunks}) != len(chunks):
        raise ValueError(f"duplicate chunk ids in {key}")


def documents_from_payloads(payloads: Iterable[Mapping[str, Any]]) -> dict[DocKey, IndexedDocument]:
    counts: dict[DocKey, int] = {}
    first: dict[DocKey, Mapping[str, Any]] = {}
    for payload in payloads:
        key = (str(payload["tenant_id"]), str(payload["doc_id"]))
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, payload)
    return {
        key: IndexedDocument(
            version=str(p["doc_version"]),
            classification=Classification(p["classification"]),
            min_level=StaffLevel(p["min_level"]),
            chunks=counts[key],
        )
        for key, p in first.items()
    }
