"""Ingestion: documents → chunks → vectors → index, atomically per document.

Documents are embedded in windows of several documents (the model batches best over many
chunks sorted by length), then each document replaces its previous version in one index call,
so a query sees the old version or the new one, never a mix and never nothing. A document is
skipped when its content hash is already indexed; a document that fails (parse error,
embedding outage) is reported by name and the rest of the batch still goes in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.guardrails.documents import DocumentScreen
from shared.tables import spell_out_tables

from .chunking import Chunk, chunk_blocks
from .documents import Document, DocumentError
from .embedding import Embedder, EmbeddingUnavailable
from .index import ChunkIndex, ChunkRecord, DocKey
from .sparse import Bm25Encoder

__all__ = ["IngestReport", "Ingestor", "Source", "embedding_text", "sentences_of"]

log = logging.getLogger(__name__)

#: What a loader yields: a parsed document, or the error that names the unreadable source.
Source = Document | DocumentError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
_MIN_SENTENCE_WORDS = 3


def embedding_text(title: str, section_path: tuple[str, ...], text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: its text in the context of its
    document title and headings, so a chunk saying "within 30 days" is findable by the topic
    it sits under, with table rows read with their column names."""
    context = " > ".join((title, *section_path))
    return f"{context}\n{spell_out_tables(text)}"


def sentences_of(text: str) -> list[str]:
    """Sentences (and list items, table rows read with their column names) of a chunk;
    fragments of fewer than three words join the sentence before them, since alone they carry
    no meaning to match."""
    out: list[str] = []
    for unit in (u.strip() for u in _SENTENCE_END.split(spell_out_tables(text))):
        if not unit:
            continue
        if out and len(unit.split()) < _MIN_SENTENCE_WORDS:
            out[-1] = f"{out[-1]} {unit}"
        else:
            out.append(unit)
    return out or [text.strip()]


@dataclass
class IngestReport:
    indexed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks: int = 0
    #: Chunk ids the document screen flagged as holding injected instructions.
    flagged: list[str] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        self.flagged += other.flagged
        self.indexed += other.indexed
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.failed.update(other.failed)
        self.chunks += other.chunks


def _label(key: DocKey) -> str:
    return f"{key[0]}/{key[1]}"


class Ingestor:
    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        bm25: Bm25Encoder,
        *,
        max_chars: int,
        overlap_chars: int,
        paragraph_chars: int = 0,
        window_chunks: int = 256,
        screen: DocumentScreen | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.bm25 = bm25
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.paragraph_chars = paragraph_chars
        self.window_chunks = window_chunks
        #: Indirect-injection screen: each chunk's verdict goes into its index payload.
        self.screen = screen

    def chunks(self, doc: Document) -> list[Chunk]:
        return chunk_blocks(
            doc.blocks,
            max_chars=self.max_chars,
            overlap_chars=self.overlap_chars,
            paragraph_chars=self.paragraph_chars,
        )

    def records(self, docs: Sequence[Document]) -> dict[DocKey, list[ChunkRecord]]:
        """Chunk and embed ``docs`` together (one embedding call for all their texts)."""
        return self._records([(doc, self.chunks(doc)) for doc in docs])

    def embedding_inputs(self, docs: Sequence[Document]) -> list[str]:
        """Every text ingesting ``docs`` embeds, in order (to measure the model on them)."""
        texts, _ = self._texts([(doc, self.chunks(doc)) for doc in docs])
        return texts

    @staticmethod
    def _texts(
        chunked: Sequence[tuple[Document, list[Chunk]]],
    ) -> tuple[list[str], list[tuple[int, int, int]]]:
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []  # per chunk: its text, first and end sentence
        for doc, chunks in chunked:
            for chunk in chunks:
                sentences = sentences_of(chunk.text)
                texts.append(embedding_text(doc.meta.title, chunk.section_path, chunk.text))
                first = len(texts)
                texts.extend(sentences)
                spans.append((first - 1, first, len(texts)))
        return texts, spans

    def _records(
        self, chunked: Sequence[tuple[Document, list[Chunk]]]
    ) -> dict[DocKey, list[ChunkRecord]]:
        texts, spans = self._texts(chunked)
        vectors = self.embedder.embed(texts)
        out: dict[DocKey, list[ChunkRecord]] = {}
        position = iter(spans)
        for doc, chunks in chunked:
            meta = doc.meta
            records = out.setdefault(doc.key, [])
            for chunk in chunks:
                at, first, end = next(position)
                verdict = (
                    None
                    if self.screen is None
                    else self.screen.screen(
                        texts[first:end],
                        vectors[first:end],
                        embedder_name=self.embedder.model_name,
                    ).payload()
                )
                records.append(
                    ChunkRecord(
                        chunk_id=f"{meta.tenant}/{meta.doc_id}@{doc.version}#{chunk.position}",
                        doc_id=meta.doc_id,
                        doc_version=doc.version,
                        title=meta.title,
                        section_path=chunk.section_path,
                        source_uri=doc.source_uri,
                        text=chunk.text,
                        tenant_id=meta.tenant,
                        allowed_roles=meta.allowed_roles,
                        min_level=meta.min_level,
                        classification=meta.classification,
                        updated_at=meta.updated_at,
                        position=chunk.position,
                        dense=vectors[at],
                        sparse=self.bm25.document(texts[at], title=meta.title),
                        sentences=np.ascontiguousarray(vectors[first:end]),
                        injection=verdict,
                    )
                )
        return out

    def ingest(
        self,
        sources: Iterable[Source],
        *,
        prune_missing: bool = False,
        progress: Callable[[int], object] | None = None,
    ) -> IngestReport:
        """Index every document of ``sources``; ``progress(n)`` is told of each n handled."""
        report = IngestReport()
        known = {key: doc.version for key, doc in self.index.documents().items()}
        seen: set[DocKey] = set()
        window: list[tuple[Document, list[Chunk]]] = []
        pending_chunks = 0
        for source in sources:
            if isinstance(source, DocumentError):
                report.failed[source.source or "?"] = str(source)
                log.warning("not ingested: %s", source)
                _tick(progress)
                continue
            if source.key in seen:
                report.failed[source.source_uri] = (
                    f"{source.source_uri}: duplicate doc_id {_label(source.key)} in this batch"
                )
                _tick(progress)
                continue
            seen.add(source.key)
            if known.get(source.key) == source.version:
                report.unchanged.append(_label(source.key))
                _tick(progress)
                continue
            chunks = self.chunks(source)
            window.append((source, chunks))
            pending_chunks += len(chunks)
            if pending_chunks >= self.window_chunks:
                report.merge(self._flush(window, progress))
                window, pending_chunks = [], 0
        report.merge(self._flush(window, progress))
        if prune_missing:
            for key in sorted(set(known) - seen):
                self.index.delete_document(key)
                report.deleted.append(_label(key))
        return report

    def _flush(
        self,
        window: list[tuple[Document, list[Chunk]]],
        progress: Callable[[int], object] | None,
    ) -> IngestReport:
        report = IngestReport()
        if not window:
            return report
        try:
            records = self._records(window)
        except EmbeddingUnavailable as exc:
            for doc, _ in window:
                report.failed[doc.source_uri] = f"{doc.source_uri}: not embedded: {exc}"
            _tick(progress, len(window))
            return report
        for doc, _ in window:
            chunks = records.get(doc.key, [])
            self.index.replace_document(doc.key, chunks)
            report.indexed.append(_label(doc.key))
            report.chunks += len(chunks)
            flagged = [c.chunk_id for c in chunks if c.injection and c.injection["flagged"]]
            if flagged:
                # Ids only: the text may be anyone's document.
                log.warning("document screen flagged %d chunk(s): %s", len(flagged), flagged)
            report.flagged += flagged
            _tick(progress)
        return report

    def delete(self, key: DocKey) -> int:
        return self.index.delete_document(key)


def _tick(progress: Callable[[int], object] | None, n: int = 1) -> None:
    if progress is not None:
        progress(n)
