"""The layout stamp of an embedded index folder: which vectors, of which model, it holds.

Vectors of two models (or two sequence lengths) must never share an index: their similarities
are not comparable. An index folder records what built it, and opening it with anything else
fails with a clear message instead of returning nonsense.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["IndexLayout", "LayoutMismatch", "prepare_folder"]

_STAMP = "layout.json"
#: Bump when the points' vectors or payload change shape, or the text they are computed from
#: (3: table rows are embedded and keyword-indexed with their column names).
LAYOUT_VERSION = 3


class LayoutMismatch(Exception):
    """The folder holds an index built differently; rebuild it from the sources."""


@dataclass(frozen=True)
class IndexLayout:
    dim: int
    embedding_model: str
    layout: int = LAYOUT_VERSION


def prepare_folder(path: Path, layout: IndexLayout, *, rebuild: bool) -> bool:
    """Make ``path`` ready for ``layout``; return True when the index must be created fresh.

    ``rebuild`` empties a folder built with another layout (the index is derived data: the
    sources rebuild it, and the embedding cache makes that cheap); otherwise a mismatch raises.
    """
    path.mkdir(parents=True, exist_ok=True)
    stamp = path / _STAMP
    if not any(p for p in path.iterdir() if p.name != _STAMP):
        stamp.write_text(json.dumps(asdict(layout)))
        return True
    found = json.loads(stamp.read_text()) if stamp.exists() else {}
    if found == asdict(layout):
        return False
    if not rebuild:
        raise LayoutMismatch(
            f"index at {path} was built with {found or 'an older layout'}, this configuration"
            f" needs {asdict(layout)}: re-ingest with --rebuild (or --prune) to rebuild it"
        )
    shutil.rmtree(path)
    path.mkdir(parents=True)
    stamp.write_text(json.dumps(asdict(layout)))
    return True
