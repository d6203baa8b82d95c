"""Retriever settings (``RETRIEVER_`` prefix, nested blocks with ``__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr

from shared.guardrails.documents import FlaggedContext
from shared.principal import StaffLevel
from shared.settings import NESTED_BLOCK, HttpSettings, ServiceSettings, service_config

__all__ = [
    "CacheSettings",
    "ChunkingSettings",
    "EmbeddingSettings",
    "IndexSettings",
    "IngestSettings",
    "QuerySettings",
    "RankingSettings",
    "RerankSettings",
    "RetrieverSettings",
    "SparseSettings",
]


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("support-platform")) / "embeddings"


class IndexSettings(BaseModel):
    model_config = NESTED_BLOCK

    path: Path | None = Field(
        default=None,
        description="Folder of the embedded index (qdrant-edge). None: a temporary folder.",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="Use a Qdrant server (qdrant-client) instead of the embedded index.",
    )
    qdrant_api_key: SecretStr | None = None
    collection: str = Field(default="knowledge", description="Qdrant server collection.")
    timeout_s: float = Field(default=10.0, gt=0)


class EmbeddingSettings(BaseModel):
    model_config = NESTED_BLOCK

    provider: Literal["onnx-minilm", "openai"] = Field(
        default="onnx-minilm",
        description="onnx-minilm: offline int8 all-MiniLM-L6-v2; openai: any /v1/embeddings API.",
    )
    model: str = Field(default="text-embedding-3-small", description="Model name for the API.")
    max_length: int = Field(default=256, ge=16, le=512, description="Tokens per text (ONNX).")
    batch_size: int = Field(default=32, ge=1, le=2048)
    threads: int = Field(default=2, ge=1, description="ONNX Runtime threads for passages.")
    query_threads: int = Field(default=1, ge=1, description="ONNX Runtime threads for queries.")
    openai_base_url: str | None = Field(default=None, description="e.g. http://host:8080/v1")
    openai_api_key: SecretStr | None = None
    dimensions: int | None = Field(default=None, ge=8, description="Requested API vector size.")
    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    cache: bool = Field(default=True, description="Cache passage vectors on disk.")
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Persistent embedding cache, keyed by content hash and model name.",
    )


class SparseSettings(BaseModel):
    """BM25 as sparse vectors; the index applies IDF."""

    model_config = NESTED_BLOCK

    k1: float = Field(default=1.2, gt=0)
    b: float = Field(default=0.75, ge=0, le=1)
    avg_len: float = Field(default=256.0, gt=0, description="Average chunk length in tokens.")
    title_boost: int = Field(
        default=3, ge=1, le=10, description="Times the title counts in a chunk's term weights."
    )
    stopwords: bool = Field(
        default=False, description="Drop English stop words (IDF already discounts them)."
    )


class ChunkingSettings(BaseModel):
    model_config = NESTED_BLOCK

    max_chars: int = Field(default=2000, ge=200, le=20_000)
    overlap_chars: int = Field(default=200, ge=0, le=2000)
    paragraph_chars: int = Field(
        default=0,
        ge=0,
        le=20_000,
        description="A block at least this long is a chunk of its own (0: pack blocks).",
    )


class RankingSettings(BaseModel):
    """Candidate generation and fusion (see docs/rag-pipeline.md for why these values).

    Weights apply to per-query z-scores, in the same units as the rerank weight."""

    model_config = NESTED_BLOCK

    candidates: int = Field(default=100, ge=1, le=1000, description="Per-stage candidates.")
    fusion: Literal["zscore", "minmax", "rrf"] = "zscore"
    bm25_weight: float = Field(default=1.0, ge=0)
    dense_weight: float = Field(default=1.0, ge=0)
    rrf_k: int = Field(default=60, ge=1)


class RerankSettings(BaseModel):
    model_config = NESTED_BLOCK

    provider: Literal["none", "sentence-maxsim", "api"] = Field(
        default="sentence-maxsim",
        description="sentence-maxsim: rescoring by the best-matching sentence (offline);"
        " api: a cross-encoder behind a /rerank HTTP API.",
    )
    depth: int = Field(default=200, ge=1, le=1000, description="Fused candidates reranked.")
    weight: float = Field(
        default=1.0, ge=0, description="Weight of the rerank z-score beside the fused score."
    )
    api_url: str | None = Field(default=None, description="POST {query, documents} → scores.")
    api_key: SecretStr | None = None
    api_model: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)


class QuerySettings(BaseModel):
    model_config = NESTED_BLOCK

    max_chars: int = Field(default=2000, ge=10, description="Longer queries are refused.")
    min_supported_script_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Share of letters that must be in a script the models know (Latin, Greek).",
    )


class CacheSettings(BaseModel):
    model_config = NESTED_BLOCK

    enabled: bool = True
    max_entries: int = Field(default=4096, ge=1)
    ttl_s: float = Field(default=600.0, gt=0)


class IngestSettings(BaseModel):
    model_config = NESTED_BLOCK

    max_document_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    admin_roles: tuple[str, ...] = Field(
        default=("knowledge-admin",), description="Roles allowed to ingest and delete documents."
    )
    admin_min_level: StaffLevel = Field(
        default=StaffLevel.L1, description="Staff level a knowledge admin must have at least."
    )
    window_chunks: int = Field(default=256, ge=1, description="Chunks embedded together.")


class RetrieverSettings(ServiceSettings):
    model_config = service_config("RETRIEVER_")

    # Uploads carry whole documents: a larger body limit than the other services.
    http: HttpSettings = Field(
        default_factory=lambda: HttpSettings(port=8002, max_body_bytes=25 * 1024 * 1024)
    )
    group_id: str = "retriever"
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    sparse: SparseSettings = Field(default_factory=SparseSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    ranking: RankingSettings = Field(default_factory=RankingSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    query: QuerySettings = Field(default_factory=QuerySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    top_k: int = Field(default=6, ge=1, le=50, description="Chunks handed to the agent.")
    relevance_threshold: float = Field(
        default=0.4,
        ge=-1.0,
        le=1.0,
        # MiniLM on the sample KB: on-topic questions' best chunk 0.60-0.68, off-topic ones
        # (weather, cars, gibberish) 0.14-0.33 (six questions: a first cut, not a calibration).
        description="Dense cosine from which a returned chunk counts as relevant: a request"
        " with one is a hit in retriever_requests_total (the hit rate's numerator).",
    )
    screen_documents: bool = Field(
        default=True,
        description="Screen chunks for injected instructions at ingest and query time.",
    )
    flagged_context: FlaggedContext = Field(
        default=FlaggedContext.QUOTE,
        description="A flagged chunk reaches the agent as quoted data, or is withheld.",
    )
    knowledge_base: Path | None = Field(
        default=None, description="Folder ingested at start-up (skipped when unchanged)."
    )
