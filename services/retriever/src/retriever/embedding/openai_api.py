"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` API, through the openai SDK.

The SDK retries connection errors, 429s and 5xx with backoff (``max_retries``); what still
fails surfaces as :class:`EmbeddingUnavailable`, which the searcher answers by degrading to
BM25 alone and ingestion by failing the batch (nothing partial is indexed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import openai

from .port import EmbeddingUnavailable, Vectors

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        dimensions: int | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        self._client = openai.OpenAI(
            base_url=base_url,
            # Local OpenAI-compatible servers often need no key; the SDK insists on one.
            api_key=api_key or "unused",
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self._model = model
        self._dimensions = dimensions
        self._batch_size = batch_size
        self._dim = dimensions

    @property
    def model_name(self) -> str:
        suffix = f"@{self._dimensions}" if self._dimensions else ""
        return f"openai:{self._model}{suffix}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            # The index must know the size before the first document; ask the model once.
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = [
            self._request(texts[i : i + self._batch_size])
            for i in range(0, len(texts), self._batch_size)
        ]
        return np.vstack(batches)

    def embed_query(self, text: str) -> Vectors:
        return cast(Vectors, self._request([text])[0])

    def _request(self, texts: Sequence[str]) -> Vectors:
        try:
            if self._dimensions:
                response = self._client.embeddings.create(
                    model=self._model,
                    input=list(texts),
                    encoding_format="float",
                    dimensions=self._dimensions,
                )
            else:
                response = self._client.embeddings.create(
                    model=self._model, input=list(texts), encoding_format="float"
                )
        except openai.APIError as exc:
            raise EmbeddingUnavailable(f"embeddings API: {type(exc).__name__}: {exc}") from exc
        rows = sorted(response.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise EmbeddingUnavailable(f"embeddings API returned {len(rows)} of {len(texts)}")
        vectors = np.asarray([r.embedding for r in rows], dtype=np.float32)
        # Compatible servers do not all normalise; the index assumes unit vectors.
        norms = np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        normalised: Vectors = vectors / norms
        return normalised
