"""``/v1/knowledge``: ingest, list and delete documents over HTTP, for knowledge admins.

The embedded index can be open in one process only, so while the service runs this endpoint
(or ``retriever ingest --remote``) is how documents get in. Uploads are multipart: the file
plus its access metadata as form fields; YAML front matter in Markdown and text files fills
what the form leaves out. The rules are in :mod:`retriever.knowledge`; this module reads the
request and maps each refusal to a 4xx that says what is wrong (a full index is a 503), never
a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status

from shared.auth.http import principal_dependency
from shared.auth.tokens import TokenService
from shared.principal import Classification, Principal, StaffLevel

from .engine import Engine
from .knowledge import Invalidate, KnowledgeAdmin, KnowledgeError, Problem
from .settings import RetrieverSettings

__all__ = ["knowledge_router"]

STATUS_OF: dict[Problem, int] = {
    Problem.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    Problem.UNSUPPORTED_FORMAT: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    Problem.TOO_LARGE: 413,  # literal: Starlette renamed the constant between versions
    Problem.UNREADABLE: 422,
    Problem.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Problem.INDEX_UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _http_error(exc: KnowledgeError) -> HTTPException:
    return HTTPException(STATUS_OF[exc.problem], {"message": exc.message})


def knowledge_router(
    settings: RetrieverSettings,
    tokens: TokenService,
    engine: Callable[[], Engine],
    *,
    invalidate: Invalidate | None = None,
) -> APIRouter:
    router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])
    knowledge = KnowledgeAdmin(settings.ingest, engine, invalidate)
    current = principal_dependency(tokens)

    # Dependencies built here are locals: FastAPI cannot resolve them from string annotations
    # (this module uses postponed annotations), so they are passed as defaults.
    async def admin(principal: Principal = Depends(current)) -> Principal:  # noqa: B008
        try:
            return knowledge.authorise(principal)
        except KnowledgeError as exc:
            raise _http_error(exc) from None

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
        given = {
            "doc_id": doc_id,
            "title": title,
            "allowed_roles": _roles(allowed_roles),
            "min_level": min_level,
            "classification": classification,
            "updated_at": updated_at,
        }
        try:
            knowledge.check_upload(name, 0)  # the format, before reading the body
            data = await file.read(settings.ingest.max_document_bytes + 1)
            return await knowledge.ingest(principal, name, data, given)
        except KnowledgeError as exc:
            raise _http_error(exc) from None

    @router.get("/documents", summary="Documents of your tenant you are cleared to read")
    async def documents(principal: Principal = as_admin) -> dict[str, Any]:
        return {"documents": await knowledge.documents(principal)}

    @router.delete("/documents/{doc_id}", summary="Delete a document and all its chunks")
    async def delete(doc_id: str, principal: Principal = as_admin) -> dict[str, Any]:
        try:
            return await knowledge.delete(principal, doc_id)
        except KnowledgeError as exc:
            raise _http_error(exc) from None

    return router


def _roles(values: list[str] | None) -> list[str] | None:
    """Roles as repeated form fields or one comma-separated field."""
    if not values:
        return None
    return [r for v in values for r in v.split(",") if r.strip()]
