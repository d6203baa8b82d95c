"""A persistent embedding cache keyed by content hash and model name.

Re-ingesting a document, rebuilding an index, or starting the local stack again embeds only
text never seen by the same model before. diskcache (SQLite underneath) is safe for several
processes at once, so the CLI and the service can share the folder. Only passages are cached:
queries are user input and are never written to disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import diskcache
import numpy as np

from .port import Embedder, Vectors

__all__ = ["CachedEmbedder"]


class CachedEmbedder:
    def __init__(self, inner: Embedder, folder: Path, *, size_limit_bytes: int = 2**31) -> None:
        self._inner = inner
        self._cache = diskcache.Cache(str(folder), size_limit=size_limit_bytes)
        self.hits = 0
        self.misses = 0

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def _key(self, text: str) -> str:
        digest = hashlib.sha256(f"{self._inner.model_name}\0{text}".encode()).hexdigest()
        return f"emb:{digest}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: list[int] = []
        for i, text in enumerate(texts):
            raw = self._cache.get(self._key(text))
            if isinstance(raw, bytes) and len(raw) == self.dim * 4:
                out[i] = np.frombuffer(raw, dtype=np.float32)
            else:
                missing.append(i)
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = self._inner.embed([texts[i] for i in missing])
            with self._cache.transact():
                for row, i in enumerate(missing):
                    out[i] = fresh[row]
                    self._cache.set(self._key(texts[i]), fresh[row].astype(np.float32).tobytes())
        return out

    def embed_query(self, text: str) -> Vectors:
        return self._inner.embed_query(text)

    def close(self) -> None:
        self._cache.close()
