"""Who may read which document, decided independently of the retriever under test.

The knowledge base's access metadata (front matter, sidecars) is read with the same loader
the ingestion uses, so both see the same labels; the rule itself is written out here from
deploy/knowledge-base/README.md and not imported from the retriever, since an evaluator that
reuses the filter it checks would agree with any bug in it.

A document may be read when all four hold: same tenant, one of its roles, a level at least
its ``min_level``, a clearance covering its classification.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.principal import Classification, Principal, StaffLevel

__all__ = ["AccessOracle", "DocumentAccess", "tenant_of_chunk"]


@dataclass(frozen=True)
class DocumentAccess:
    tenant: str
    doc_id: str
    allowed_roles: frozenset[str]
    min_level: StaffLevel
    classification: Classification

    def readable_by(self, principal: Principal) -> bool:
        return (
            self.tenant == principal.tenant_id
            and bool(self.allowed_roles & set(principal.roles))
            and principal.level.at_least(self.min_level)
            and self.classification.rank <= principal.clearance.rank
        )


def tenant_of_chunk(chunk_id: str) -> str:
    """Chunk ids read ``tenant/doc_id@version#position`` (see retriever.ingest)."""
    return chunk_id.partition("/")[0]


class AccessOracle:
    def __init__(self, documents: Iterable[DocumentAccess]) -> None:
        self._documents = {(d.tenant, d.doc_id): d for d in documents}

    @classmethod
    def from_knowledge_base(cls, folder: Path, *, max_bytes: int) -> AccessOracle:
        """The labels of every document the ingestion can read in ``folder``."""
        from retriever.documents import Document, discover, load_many

        documents = [
            DocumentAccess(
                tenant=doc.meta.tenant,
                doc_id=doc.meta.doc_id,
                allowed_roles=frozenset(doc.meta.allowed_roles),
                min_level=doc.meta.min_level,
                classification=doc.meta.classification,
            )
            for doc in load_many(discover(folder), max_bytes=max_bytes)
            if isinstance(doc, Document)
        ]
        return cls(documents)

    def __len__(self) -> int:
        return len(self._documents)

    def forbidden(self, principal: Principal, *, tenant: str, doc_id: str) -> bool:
        """Whether handing this document to ``principal`` is a leak.

        A document the oracle does not know counts as forbidden: what cannot be checked is
        not assumed to be safe.
        """
        document = self._documents.get((tenant, doc_id))
        return document is None or not document.readable_by(principal)
