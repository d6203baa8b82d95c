"""``/v1/knowledge``: ingest, list and delete documents over HTTP, for knowledge admins.

The embedded index can be open in one process only, so while the service runs this endpoint
(or ``retriever ingest --remote``) is how documents get in. Uploads are multipart: the file
plus its access metadata as form fields; YAML front matter in Markdown and text files fills
what the form leaves out. Bad input is a 4xx that says what is wrong, never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from shared.auth.http import principal_dependency
from shared.auth.tokens import TokenService
from shared.principal import Classification, Principal, StaffLevel

from .admin import Forbidden, authorise_admin, authorise_document
from .documents import DocumentError, format_of, load_bytes
from .engine import Engine
from .settings import RetrieverSettings

__all__ = ["knowledge_router"]


def knowledge_router(
    settings: RetrieverSettings,
    tokens: TokenService,
    engine: Callable[[], Engine],
    *,
    invalidate: Callable[[str, list[str]], Awaitable[None]] | None = None,
) -> APIRouter:
    """``invalidate(tenant, doc_ids)`` runs after documents changed or were deleted (the
    answer cache drops what cites them)."""
    router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
    current = principal_dependency(tokens)

    # Dependencies built here are locals: FastAPI cannot resolve them from string annotations
    # (this module uses postponed annotations), so they are passed as defaults.
    async def admin(principal: Principal = Depends(current)) -> Principal:  # noqa: B008
        try:
            authorise_admin(principal, settings.ingest)
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, {"message": str(exc)}) from None
        return principal

    as_admin = Depends(admin)

    @router.post("/documents", status_code=status.HTTP_201_CREATED, summary="Ingest a document")
    async def ingest(
        file: Annotated[UploadFile, File(description="Markdown, HTML, text or PDF.")],
        allowed_roles: Annotated[list[str] | None, Form()] = None,
        min_level: Annotated[StaffLevel | None, Form()] = None,
        classification: Annotated[Classification | None, Form()] = None,
        doc_id: Annotated[str | None, Form()] = None,
        title: Annotated[str | None, Form()] = None,
        updated_at: Annotated[datetime | None, Form()] = None,
        principal: Principal = as_admin,
    ) -> dict[str, Any]:
        name = file.filename or "upload"
        try:
            fmt = format_of(name)
        except DocumentError as exc:
            raise HTTPException(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, {"message": str(exc)}
            ) from None
        limit = settings.ingest.max_document_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(
                413,
                {"message": f"{name}: document exceeds {limit} bytes"},
            )
        given = {
            "tenant": principal.tenant_id,
            "doc_id": doc_id,
            "title": title,
            "allowed_roles": _roles(allowed_roles),
            "min_level": min_level,
            "classification": classification,
            "updated_at": updated_at,
        }
        metadata = {k: v for k, v in given.items() if v is not None}
        try:
            doc = await asyncio.to_thread(
                load_bytes,
                data,
                name=name,
                source_uri=f"upload://{principal.tenant_id}/{name}",
                metadata=metadata,
                max_bytes=limit,
                fmt=fmt,
            )
        except DocumentError as exc:
            raise HTTPException(422, {"message": str(exc)}) from None
        e = engine()
        previous = e.index.documents(doc.meta.tenant).get(doc.key)
        try:
            authorise_document(principal, doc.meta.tenant, doc.meta.classification)
            if previous is not None:
                authorise_document(principal, doc.meta.tenant, previous.classification)
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, {"message": str(exc)}) from None
        report = await asyncio.to_thread(e.ingestor.ingest, [doc])
        if report.failed:
            message = next(iter(report.failed.values()))
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, {"message": message})
        if invalidate is not None and report.indexed:
            await invalidate(doc.meta.tenant, [doc.meta.doc_id])
        return {
            "tenant": doc.meta.tenant,
            "doc_id": doc.meta.doc_id,
            "version": doc.version,
            "status": "unchanged" if report.unchanged else "indexed",
            "chunks": report.chunks,
            "index_version": e.index.version,
        }

    @router.get("/documents", summary="Documents of your tenant you are cleared to read")
    async def documents(principal: Principal = as_admin) -> dict[str, Any]:
        found = await asyncio.to_thread(engine().index.documents, principal.tenant_id)
        return {
            "documents": [
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
        }

    @router.delete("/documents/{doc_id}", summary="Delete a document and all its chunks")
    async def delete(doc_id: str, principal: Principal = as_admin) -> dict[str, Any]:
        e = engine()
        key = (principal.tenant_id, doc_id)
        existing = e.index.documents(principal.tenant_id).get(key)
        if existing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, {"message": f"no document {doc_id!r}"})
        try:
            authorise_document(principal, principal.tenant_id, existing.classification)
        except Forbidden as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, {"message": str(exc)}) from None
        removed = await asyncio.to_thread(e.ingestor.delete, key)
        if invalidate is not None:
            await invalidate(principal.tenant_id, [doc_id])
        return {"doc_id": doc_id, "deleted_chunks": removed, "index_version": e.index.version}

    return router


def _roles(values: list[str] | None) -> list[str] | None:
    """Roles as repeated form fields or one comma-separated field."""
    if not values:
        return None
    return [r for v in values for r in v.split(",") if r.strip()]
