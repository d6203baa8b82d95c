"""Managing a tenant's knowledge: ingest an uploaded document, list, delete.

The rules live here, not in the HTTP layer: who may manage which document (``admin``), how
big an upload may be, what counts as a readable document, and what happens to the answer
cache afterwards. ``/v1/knowledge`` (``http_api``) only reads the request, calls these
functions and maps a :class:`KnowledgeError`'s code to an HTTP status; tests call them
directly.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.principal import Classification, Principal

from .admin import Forbidden, authorise_admin, authorise_document
from .documents import DocumentError, format_of, load_bytes
from .engine import Engine
from .settings import IngestSettings

__all__ = ["KnowledgeAdmin", "KnowledgeError", "Problem"]


class Problem(enum.StrEnum):
    """Why a knowledge operation was refused; the entry point picks the status for each."""

    FORBIDDEN = "forbidden"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    NOT_FOUND = "not_found"
    INDEX_UNAVAILABLE = "index_unavailable"


class KnowledgeError(Exception):
    """A refused operation; the message is safe to show the admin who asked."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


#: ``invalidate(tenant, doc_ids)``: run after documents changed or were deleted (the answer
#: cache drops what cites them).
Invalidate = Callable[[str, list[str]], Awaitable[None]]


@dataclass(frozen=True)
class KnowledgeAdmin:
    settings: IngestSettings
    engine: Callable[[], Engine]
    invalidate: Invalidate | None = None

    def authorise(self, principal: Principal) -> Principal:
        """The principal, when they are a knowledge admin; :class:`KnowledgeError` if not."""
        try:
            authorise_admin(principal, self.settings)
        except Forbidden as exc:
            raise KnowledgeError(Problem.FORBIDDEN, str(exc)) from None
        return principal

    def check_upload(self, name: str, size: int) -> None:
        """Refuse early what cannot be ingested: an unknown format, or more than the limit
        (``size`` may be one byte over: the entry point reads no further than that)."""
        try:
            format_of(name)
        except DocumentError as exc:
            raise KnowledgeError(Problem.UNSUPPORTED_FORMAT, str(exc)) from None
        limit = self.settings.max_document_bytes
        if size > limit:
            raise KnowledgeError(Problem.TOO_LARGE, f"{name}: document exceeds {limit} bytes")

    async def ingest(
        self, principal: Principal, name: str, data: bytes, given: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Ingest one uploaded file into the principal's tenant; ``given`` is the access
        metadata from the form (front matter fills what it leaves out)."""
        self.check_upload(name, len(data))
        metadata = {k: v for k, v in given.items() if v is not None}
        metadata["tenant"] = principal.tenant_id
        try:
            doc = await asyncio.to_thread(
                load_bytes,
                data,
                name=name,
                source_uri=f"upload://{principal.tenant_id}/{name}",
                metadata=metadata,
                max_bytes=self.settings.max_document_bytes,
                fmt=format_of(name),
            )
        except DocumentError as exc:
            raise KnowledgeError(Problem.UNREADABLE, str(exc)) from None
        engine = self.engine()
        previous = engine.index.documents(doc.meta.tenant).get(doc.key)
        # Replacing a document needs clearance for the old version as well as the new one.
        self._authorise_document(principal, doc.meta.tenant, doc.meta.classification)
        if previous is not None:
            self._authorise_document(principal, doc.meta.tenant, previous.classification)
        report = await asyncio.to_thread(engine.ingestor.ingest, [doc])
        if report.failed:
            raise KnowledgeError(Problem.INDEX_UNAVAILABLE, next(iter(report.failed.values())))
        if self.invalidate is not None and report.indexed:
            await self.invalidate(doc.meta.tenant, [doc.meta.doc_id])
        return {
            "tenant": doc.meta.tenant,
            "doc_id": doc.meta.doc_id,
            "version": doc.version,
            "status": "unchanged" if report.unchanged else "indexed",
            "chunks": report.chunks,
            "index_version": engine.index.version,
        }

    async def documents(self, principal: Principal) -> list[dict[str, Any]]:
        """The tenant's documents the principal is cleared to read."""
        found = await asyncio.to_thread(self.engine().index.documents, principal.tenant_id)
        return [
            {
                "doc_id": doc_id,
                "version": d.version,
                "classification": d.classification.value,
                "min_level": d.min_level.value,
                "chunks": d.chunks,
            }
            for (_, doc_id), d in sorted(found.items())
            if d.classification.rank <= principal.clearance.rank
        ]

    async def delete(self, principal: Principal, doc_id: str) -> dict[str, Any]:
        engine = self.engine()
        key = (principal.tenant_id, doc_id)
        existing = engine.index.documents(principal.tenant_id).get(key)
        if existing is None:
            raise KnowledgeError(Problem.NOT_FOUND, f"no document {doc_id!r}")
        self._authorise_document(principal, principal.tenant_id, existing.classification)
        removed = await asyncio.to_thread(engine.ingestor.delete, key)
        if self.invalidate is not None:
            await self.invalidate(principal.tenant_id, [doc_id])
        return {"doc_id": doc_id, "deleted_chunks": removed, "index_version": engine.index.version}

    @staticmethod
    def _authorise_document(
        principal: Principal, tenant: str, classification: Classification
    ) -> None:
        try:
            authorise_document(principal, tenant, classification)
        except Forbidden as exc:
            raise KnowledgeError(Problem.FORBIDDEN, str(exc)) from None
