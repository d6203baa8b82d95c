from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, ServiceSettings

_block = ConfigDict(extra="forbid", frozen=True)


class IndexSettings(BaseModel):
    model_config = _block

    path: Path | None = Field(
        default=None,
        description="Folder of the embedded index (qdrant-edge). None: a temporary folder.",
    )
    qdrant_url: str | None = Field(
        default=None, description="Use a Qdrant server instead of the embedded index."
    )
    qdrant_api_key: str | None = None
    collection: str = "knowledge"


class EmbeddingSettings(BaseModel):
    model_config = _block

    provider: Literal["onnx-minilm", "openai"] = "onnx-minilm"
    model: str = "all-MiniLM-L6-v2-int8"
    max_length: int = Field(default=256, ge=16, le=512)
    batch_size: int = Field(default=32, ge=1)
    threads: int = Field(default=2, ge=1)
    openai_base_url: str | None = None
    openai_api_key: str | None = None


class RetrieverSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="RETRIEVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8002))
    group_id: str = "retriever"
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    top_k: int = Field(default=6, ge=1, le=50, description="Chunks handed to the agent.")
    candidates: int = Field(
        default=50, ge=1, le=1000, description="Per-stage candidates before fusion."
    )
    knowledge_base: Path | None = Field(
        default=None, description="Folder ingested at start-up (skipped when unchanged)."
    )
