"""Ingestion: documents → chunks → vectors → index, skipping what has not changed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .chunking import chunk_markdown
from .documents import Document, DocumentError, load_markdown
from .embedding import Embedder
from .index import ChunkIndex, ChunkRecord
from .sparse import Bm25Encoder

__all__ = ["IngestReport", "Ingestor", "embedding_text"]

log = logging.getLogger(__name__)


def embedding_text(title: str, section_path: tuple[str, ...], text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its text in the context of its
    document title and headings, so a chunk saying "within 30 days" is findable by the topic
    it sits under."""
    context = " > ".join((title, *section_path))
    return f"{context}\n{text}"


@dataclass
class IngestReport:
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks: int = 0


class Ingestor:
    def __init__(self, index: ChunkIndex, embedder: Embedder, bm25: Bm25Encoder) -> None:
        self.index = index
        self.embedder = embedder
        self.bm25 = bm25

    def chunk_records(self, doc: Document) -> list[ChunkRecord]:
        chunks = chunk_markdown(doc.text)
        texts = [embedding_text(doc.meta.title, c.section_path, c.text) for c in chunks]
        dense = self.embedder.embed(texts)
        meta = doc.meta
        return [
            ChunkRecord(
                chunk_id=f"{meta.doc_id}#{c.position}",
                doc_id=meta.doc_id,
                doc_version=doc.version,
                title=meta.title,
                section_path=c.section_path,
                source_uri=doc.source_uri,
                text=c.text,
                tenant_id=meta.tenant,
                allowed_roles=meta.allowed_roles,
                min_level=meta.min_level,
                classification=meta.classification,
                updated_at=meta.updated_at,
                position=c.position,
                dense=dense[i],
                sparse=self.bm25.document(texts[i]),
            )
            for i, c in enumerate(chunks)
        ]

    def ingest(self, documents: Iterable[Document], *, prune_missing: bool = False) -> IngestReport:
        report = IngestReport()
        known = self.index.document_versions()
        seen: set[str] = set()
        for doc in documents:
            seen.add(doc.meta.doc_id)
            if known.get(doc.meta.doc_id) == doc.version:
                report.unchanged.append(doc.meta.doc_id)
                continue
            records = self.chunk_records(doc)
            self.index.replace_document(doc.meta.doc_id, records)
            report.indexed.append(doc.meta.doc_id)
            report.chunks += len(records)
        if prune_missing:
            for doc_id in sorted(set(known) - seen):
                self.index.delete_document(doc_id)
                report.deleted.append(doc_id)
        return report

    def ingest_folder(self, folder: Path, *, prune_missing: bool = False) -> IngestReport:
        docs: list[Document] = []
        failed: dict[str, str] = {}
        for path in sorted(folder.rglob("*.md")):
            if path.name.lower() == "readme.md":
                continue
            try:
                docs.append(load_markdown(path))
            except DocumentError as exc:
                failed[str(path)] = str(exc)
                log.warning("skipping %s", exc)
        report = self.ingest(docs, prune_missing=prune_missing)
        report.failed.update(failed)
        return report
