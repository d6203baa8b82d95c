"""Source documents: parsing Markdown, HTML, text and PDF into structured blocks with access
metadata."""

from .loader import (
    FORMATS,
    SIDECAR_SUFFIX,
    discover,
    format_of,
    load_bytes,
    load_file,
    load_many,
)
from .model import AccessMetadata, Block, Document, DocumentError, ParsedText

__all__ = [
    "FORMATS",
    "SIDECAR_SUFFIX",
    "AccessMetadata",
    "Block",
    "Document",
    "DocumentError",
    "ParsedText",
    "discover",
    "format_of",
    "load_bytes",
    "load_file",
    "load_many",
]
