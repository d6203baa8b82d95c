"""The rerank stage behind its own port, and its adapters.

- :class:`SentenceMaxSim` (default, offline): rescores each candidate by its best-matching
  sentence (MaxSim of the query vector against the chunk's sentence vectors, computed by the
  index under the same permission filter). A chunk-level vector blurs a chunk's sentences
  together; the sentence that answers the question stands out on its own.
- :class:`HttpReranker`: a cross-encoder served behind the common ``/rerank`` API
  (Text Embeddings Inference, Jina, Cohere-compatible servers), when configured.
- :class:`NoRerank`: the fused order as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from ..embedding import Vectors
from ..index import AccessScope, ChunkIndex

__all__ = ["HttpReranker", "NoRerank", "RerankUnavailable", "Reranker", "SentenceMaxSim"]


class RerankUnavailable(Exception):
    """The rerank backend cannot answer; the searcher keeps the fused order."""


class Reranker(Protocol):
    @property
    def name(self) -> str: ...

    def rerank(
        self,
        query: str,
        vector: Vectors | None,
        chunk_ids: Sequence[str],
        scope: AccessScope,
    ) -> dict[str, float]:
        """A relevance score per candidate chunk id (higher is better, any scale)."""
        ...


class NoRerank:
    name = "none"

    def rerank(
        self,
        query: str,
        vector: Vectors | None,
        chunk_ids: Sequence[str],
        scope: AccessScope,
    ) -> dict[str, float]:
        return {}


class SentenceMaxSim:
    name = "sentence-maxsim"

    def __init__(self, index: ChunkIndex) -> None:
        self._index = index

    def rerank(
        self,
        query: str,
        vector: Vectors | None,
        chunk_ids: Sequence[str],
        scope: AccessScope,
    ) -> dict[str, float]:
        if vector is None:
            return {}
        return self._index.sentence_scores(vector, chunk_ids, scope)


class HttpReranker:
    """``POST {url}`` with ``{"query", "documents" | "texts", "model"?}``; reads either
    ``{"results": [{"index", "relevance_score"}]}`` (Cohere / Jina) or ``[{"index", "score"}]``
    (Text Embeddings Inference)."""

    name = "api"

    def __init__(
        self,
        url: str,
        index: ChunkIndex,
        *,
        api_key: str | None,
        model: str | None,
        timeout_s: float,
    ) -> None:
        self._index = index
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)
        self._url = url
        self._model = model

    def rerank(
        self,
        query: str,
        vector: Vectors | None,
        chunk_ids: Sequence[str],
        scope: AccessScope,
    ) -> dict[str, float]:
        payloads = self._index.payloads(chunk_ids, scope)
        ids = [c for c in chunk_ids if c in payloads]
        if not ids:
            return {}
        texts = [str(payloads[c]["text"]) for c in ids]
        body: dict[str, Any] = {"query": query, "documents": texts, "texts": texts}
        if self._model:
            body["model"] = self._model
        try:
            response = self._client.post(self._url, json=body)
            response.raise_for_status()
            data = response.json()
            rows = data["results"] if isinstance(data, dict) else data
            return {
                ids[int(r["index"])]: float(r.get("relevance_score", r.get("score"))) for r in rows
            }
        except (httpx.HTTPError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise RerankUnavailable(f"rerank API: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
