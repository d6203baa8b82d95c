"""Builds the retrieval engine (embedder, BM25 encoder, index, searcher) from settings."""

from __future__ import annotations

from dataclasses import dataclass

from .embedding import Embedder, OnnxMiniLM
from .index import ChunkIndex
from .index.edge import EdgeChunkIndex
from .ingest import Ingestor
from .search import HybridSearcher
from .settings import RetrieverSettings
from .sparse import Bm25Encoder

__all__ = ["Engine", "build_engine"]


@dataclass
class Engine:
    embedder: Embedder
    bm25: Bm25Encoder
    index: ChunkIndex
    searcher: HybridSearcher
    ingestor: Ingestor

    def close(self) -> None:
        self.index.close()


def build_embedder(settings: RetrieverSettings) -> Embedder:
    cfg = settings.embedding
    if cfg.provider == "openai":
        raise NotImplementedError("the OpenAI-compatible embedder arrives with ingestion work")
    return OnnxMiniLM(max_length=cfg.max_length, batch_size=cfg.batch_size, threads=cfg.threads)


def build_engine(settings: RetrieverSettings, *, embedder: Embedder | None = None) -> Engine:
    embedder = embedder or build_embedder(settings)
    bm25 = Bm25Encoder()
    index: ChunkIndex = EdgeChunkIndex(settings.index.path, dim=embedder.dim)
    searcher = HybridSearcher(index, embedder, bm25, candidates=settings.candidates)
    return Engine(embedder, bm25, index, searcher, Ingestor(index, embedder, bm25))
