"""Ranking: fusion of the retrieval stages (pure functions) and the rerank port."""

from .fusion import Normalisation, convex, fuse, mix_rerank, normalise, ranked, rrf
from .rerank import HttpReranker, NoRerank, Reranker, RerankUnavailable, SentenceMaxSim

__all__ = [
    "HttpReranker",
    "NoRerank",
    "Normalisation",
    "RerankUnavailable",
    "Reranker",
    "SentenceMaxSim",
    "convex",
    "fuse",
    "mix_rerank",
    "normalise",
    "ranked",
    "rrf",
]
