"""Builds the retrieval engine (embedder, BM25 encoder, index, searcher, cache, ingestor)
from settings: the one place that knows which adapter backs each port."""

from __future__ import annotations

from dataclasses import dataclass

from shared.guardrails.documents import default_document_screen

from .cache import RetrievalCache
from .embedding import CachedEmbedder, Embedder, OnnxMiniLM, OpenAIEmbedder
from .index import ChunkIndex
from .ingest import Ingestor
from .ranking import HttpReranker, NoRerank, Reranker, SentenceMaxSim
from .retrieval import Retriever
from .search import HybridSearcher, SearchResult
from .settings import RetrieverSettings
from .sparse import Bm25Encoder

__all__ = ["Engine", "build_embedder", "build_engine", "build_index"]


@dataclass
class Engine:
    embedder: Embedder
    bm25: Bm25Encoder
    index: ChunkIndex
    searcher: HybridSearcher
    retriever: Retriever
    ingestor: Ingestor

    def close(self) -> None:
        self.index.close()
        if isinstance(self.embedder, CachedEmbedder):
            self.embedder.close()
        if isinstance(self.searcher.reranker, HttpReranker):
            self.searcher.reranker.close()


def build_embedder(settings: RetrieverSettings) -> Embedder:
    cfg = settings.embedding
    model: Embedder
    if cfg.provider == "openai":
        model = OpenAIEmbedder(
            model=cfg.model,
            base_url=cfg.openai_base_url,
            api_key=cfg.openai_api_key.get_secret_value() if cfg.openai_api_key else None,
            dimensions=cfg.dimensions,
            batch_size=cfg.batch_size,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
    else:
        model = OnnxMiniLM(
            max_length=cfg.max_length,
            batch_size=cfg.batch_size,
            threads=cfg.threads,
            query_threads=cfg.query_threads,
        )
    return CachedEmbedder(model, cfg.cache_dir) if cfg.cache else model


def build_index(
    settings: RetrieverSettings, embedder: Embedder, *, rebuild: bool = False
) -> ChunkIndex:
    cfg = settings.index
    if cfg.qdrant_url:
        from qdrant_client import QdrantClient

        from .index.qdrant_server import QdrantChunkIndex

        client = QdrantClient(
            url=cfg.qdrant_url,
            api_key=cfg.qdrant_api_key.get_secret_value() if cfg.qdrant_api_key else None,
            timeout=int(cfg.timeout_s),
        )
        return QdrantChunkIndex(
            client, cfg.collection, dim=embedder.dim, embedding_model=embedder.model_name
        )
    from .index.edge import EdgeChunkIndex

    return EdgeChunkIndex(
        cfg.path, dim=embedder.dim, embedding_model=embedder.model_name, rebuild=rebuild
    )


def build_reranker(settings: RetrieverSettings, index: ChunkIndex) -> Reranker:
    cfg = settings.rerank
    if cfg.provider == "api":
        if not cfg.api_url:
            raise ValueError("RETRIEVER_RERANK__API_URL is required for the api reranker")
        return HttpReranker(
            cfg.api_url,
            index,
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            model=cfg.api_model,
            timeout_s=cfg.timeout_s,
        )
    if cfg.provider == "sentence-maxsim":
        return SentenceMaxSim(index)
    return NoRerank()


def build_engine(
    settings: RetrieverSettings,
    *,
    embedder: Embedder | None = None,
    index: ChunkIndex | None = None,
    rebuild: bool = False,
) -> Engine:
    """Adapters from settings; ``embedder`` and ``index`` replace them in tests and benchmarks."""
    embedder = embedder or build_embedder(settings)
    sparse = settings.sparse
    bm25 = Bm25Encoder(
        k1=sparse.k1,
        b=sparse.b,
        avg_len=sparse.avg_len,
        title_boost=sparse.title_boost,
        stopwords=sparse.stopwords,
    )
    index = index or build_index(settings, embedder, rebuild=rebuild)
    searcher = HybridSearcher(
        index,
        embedder,
        bm25,
        build_reranker(settings, index),
        ranking=settings.ranking,
        rerank=settings.rerank,
    )
    cache: RetrievalCache[SearchResult] | None = (
        RetrievalCache(max_entries=settings.cache.max_entries, ttl_s=settings.cache.ttl_s)
        if settings.cache.enabled
        else None
    )
    ingestor = Ingestor(
        index,
        embedder,
        bm25,
        max_chars=settings.chunking.max_chars,
        overlap_chars=settings.chunking.overlap_chars,
        paragraph_chars=settings.chunking.paragraph_chars,
        window_chunks=settings.ingest.window_chunks,
        screen=default_document_screen() if settings.screen_documents else None,
    )
    return Engine(
        embedder,
        bm25,
        index,
        searcher,
        Retriever(searcher, query=settings.query, cache=cache),
        ingestor,
    )
