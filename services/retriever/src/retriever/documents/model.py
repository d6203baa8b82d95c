"""What ingestion works on: a parsed document with its access metadata, as structured blocks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.principal import Classification, StaffLevel

__all__ = ["AccessMetadata", "Block", "BlockKind", "Document", "DocumentError", "ParsedText"]

BlockKind = Literal["paragraph", "list", "table", "code", "quote"]


class DocumentError(Exception):
    """A document that cannot be ingested; the message names the source and says why."""

    def __init__(self, reason: str, *, source: str | None = None) -> None:
        super().__init__(f"{source}: {reason}" if source else reason)
        self.reason = reason
        self.source = source


class AccessMetadata(BaseModel):
    """Who may read a document, and how it is identified (front matter, sidecar or request)."""

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
            value = value.split(",")
        if isinstance(value, list | tuple | set):
            return tuple(sorted({str(r).strip().lower() for r in value if str(r).strip()}))
        return value

    @field_validator("updated_at", mode="before")
    @classmethod
    def _date(cls, value: object) -> object:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        return value

    @field_validator("updated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # Naive timestamps are read as UTC, so the same file gives the same version anywhere.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


@dataclass(frozen=True)
class Block:
    """One structural unit of a document (paragraph, list, table, ...) under its headings."""

    section_path: tuple[str, ...]
    text: str
    kind: BlockKind = "paragraph"


@dataclass(frozen=True)
class ParsedText:
    """What a format parser returns: the blocks in reading order and a title if it found one."""

    blocks: tuple[Block, ...]
    title: str | None = None


@dataclass(frozen=True)
class Document:
    meta: AccessMetadata
    blocks: tuple[Block, ...]
    source_uri: str
    format: str

    @property
    def key(self) -> tuple[str, str]:
        """Documents are identified per tenant: two tenants may use the same doc_id."""
        return (self.meta.tenant, self.meta.doc_id)

    @property
    def version(self) -> str:
        """Content hash of metadata and structured text: a change to either is a new version."""
        digest = hashlib.sha256()
        digest.update(self.meta.model_dump_json().encode())
        for block in self.blocks:
            digest.update(b"\0")
            digest.update(json.dumps([block.section_path, block.kind, block.text]).encode())
        return digest.hexdigest()[:16]
