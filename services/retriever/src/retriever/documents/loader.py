"""Files and uploads → :class:`Document`: format detection, access metadata, size limits.

Access metadata comes, most specific last: defaults given by the caller (CLI options, the
upload form), a sidecar file ``<name>.meta.yaml`` beside the document (any format), and YAML
front matter (Markdown and text). ``doc_id`` defaults to the file name and ``title`` to the
document's own title (first ``#`` heading, ``<title>``, PDF metadata). Every error names the
source and says what is wrong.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any

import frontmatter
import yaml
from pydantic import ValidationError

from .html import parse_html
from .markdown import parse_markdown
from .model import AccessMetadata, Block, Document, DocumentError, ParsedText
from .pdf import parse_pdf
from .plain import parse_plain

__all__ = [
    "FORMATS",
    "SIDECAR_SUFFIX",
    "discover",
    "format_of",
    "load_bytes",
    "load_file",
    "load_many",
]

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
SIDECAR_SUFFIX = ".meta.yaml"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]+")


def format_of(name: str) -> str:
    fmt = FORMATS.get(PurePath(name).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise DocumentError(f"unsupported format (known: {known})", source=name)
    return fmt


def discover(folder: Path, *, exclude: tuple[str, ...] = ("README*",)) -> Iterator[Path]:
    """Documents under ``folder`` in a stable order, skipping ``exclude`` name patterns."""
    for path in sorted(folder.rglob("*")):
        if (
            path.is_file()
            and path.suffix.lower() in FORMATS
            and not any(path.match(p) for p in exclude)
        ):
            yield path


def load_many(
    paths: Iterable[Path], *, defaults: Mapping[str, Any] | None = None, max_bytes: int
) -> Iterator[Document | DocumentError]:
    """Load lazily, one result per file: a document, or the error naming that file."""
    for path in paths:
        try:
            yield load_file(path, defaults=defaults, max_bytes=max_bytes)
        except DocumentError as exc:
            yield exc


def load_file(path: Path, *, defaults: Mapping[str, Any] | None = None, max_bytes: int) -> Document:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(f"{size} bytes exceeds the limit of {max_bytes}", source=str(path))
        data = path.read_bytes()
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(microsecond=0)
    except OSError as exc:
        raise DocumentError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    metadata: dict[str, Any] = {"updated_at": modified, **(defaults or {})}
    metadata.update(_sidecar(path))
    return load_bytes(
        data,
        name=str(path),
        source_uri=path.resolve().as_uri(),
        metadata=metadata,
        max_bytes=max_bytes,
    )


def load_bytes(
    data: bytes,
    *,
    name: str,
    source_uri: str,
    metadata: Mapping[str, Any],
    max_bytes: int,
    fmt: str | None = None,
) -> Document:
    """Parse one document from memory; ``name`` is used in errors and for defaults."""
    fmt = fmt or format_of(name)
    if len(data) > max_bytes:
        raise DocumentError(f"{len(data)} bytes exceeds the limit of {max_bytes}", source=name)
    meta = dict(metadata)
    try:
        parsed = _parse(data, fmt, meta)
    except DocumentError as exc:
        raise DocumentError(exc.reason, source=name) from None
    blocks = tuple(b for b in (_clean(b) for b in parsed.blocks) if b.text)
    if not blocks:
        raise DocumentError("document has no text", source=name)
    stem = PurePath(name).name.split(".")[0]
    meta.setdefault("doc_id", _ID_UNSAFE.sub("-", stem).strip("-._:") or "document")
    meta.setdefault("title", parsed.title or stem)
    try:
        access = AccessMetadata.model_validate(meta)
    except ValidationError as exc:
        raise DocumentError(f"invalid metadata: {_explain(exc)}", source=name) from None
    return Document(meta=access, blocks=blocks, source_uri=source_uri, format=fmt)


def _parse(data: bytes, fmt: str, meta: dict[str, Any]) -> ParsedText:
    if fmt == "pdf":
        return parse_pdf(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte {exc.start})") from None
    if fmt == "html":
        return parse_html(text)
    try:
        post = frontmatter.loads(text)
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid front matter: {exc}") from None
    meta.update(post.metadata)
    return parse_markdown(post.content) if fmt == "markdown" else parse_plain(post.content)


def _sidecar(path: Path) -> dict[str, Any]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        return {}
    try:
        loaded = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DocumentError(f"unreadable metadata: {exc}", source=str(sidecar)) from None
    if not isinstance(loaded, dict):
        raise DocumentError("metadata must be a mapping of keys to values", source=str(sidecar))
    return loaded


def _clean(block: Block) -> Block:
    """Unicode-normalise and drop control characters, which only confuse tokenisers."""
    text = _CONTROL.sub(" ", unicodedata.normalize("NFC", block.text)).strip()
    return Block(block.section_path, text, block.kind)


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:4]:
        field = ".".join(str(p) for p in err["loc"]) or "metadata"
        parts.append(f"{field}: {'missing' if err['type'] == 'missing' else err['msg']}")
    return "; ".join(parts)
