"""Source documents and their access metadata.

A knowledge-base document is a Markdown file with YAML front matter naming its tenant,
allowed roles, minimum staff level and classification (see deploy/knowledge-base/README.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import frontmatter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.principal import Classification, StaffLevel

__all__ = ["AccessMetadata", "Document", "DocumentError", "load_markdown"]


class DocumentError(Exception):
    """A document that cannot be ingested; the message names the file and why."""


class AccessMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    doc_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    title: str = Field(min_length=1, max_length=300)
    tenant: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    allowed_roles: tuple[str, ...] = Field(min_length=1)
    min_level: StaffLevel
    classification: Classification
    updated_at: datetime | None = None

    @field_validator("allowed_roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        return tuple(sorted({str(r).strip().lower() for r in value or [] if str(r).strip()}))  # type: ignore[attr-defined]

    @field_validator("updated_at", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value


@dataclass(frozen=True)
class Document:
    meta: AccessMetadata
    text: str
    source_uri: str
    format: str

    @property
    def version(self) -> str:
        """Content hash of text and metadata: a change to either is a new version."""
        digest = hashlib.sha256()
        digest.update(self.meta.model_dump_json().encode())
        digest.update(b"\0")
        digest.update(self.text.encode())
        return digest.hexdigest()[:16]


def load_markdown(path: Path) -> Document:
    try:
        post = frontmatter.load(str(path))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DocumentError(f"{path}: cannot read: {exc}") from None
    try:
        meta = AccessMetadata.model_validate(post.metadata)
    except ValidationError as exc:
        raise DocumentError(f"{path}: invalid front matter: {exc.errors()[0]['msg']}") from None
    text = post.content.strip()
    if not text:
        raise DocumentError(f"{path}: document has no text")
    return Document(meta=meta, text=text, source_uri=path.resolve().as_uri(), format="markdown")
