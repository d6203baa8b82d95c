"""The embedding port: texts in, L2-normalised vectors out (cosine similarity = dot product)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["Embedder", "EmbeddingUnavailable", "Vectors"]

Vectors = npt.NDArray[np.float32]


class EmbeddingUnavailable(Exception):
    """The embedding backend cannot answer now (network, rate limit, server error)."""


class Embedder(Protocol):
    @property
    def model_name(self) -> str:
        """Names the model *and* every setting that changes its vectors (keys the cache)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed passages, batched by the adapter; shape (len(texts), dim)."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Embed one query; shape (dim,)."""
        ...
