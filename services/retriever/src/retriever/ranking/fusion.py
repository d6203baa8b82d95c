"""Score fusion as pure functions over ``{chunk_id: score}`` maps.

Every stage scores on its own scale (BM25 is unbounded, cosine lives in [-1, 1]), so scores
are normalised per query before they are mixed. Which method and weights the retriever uses
is a measured choice (docs/rag-pipeline.md); the alternatives stay here because the benchmark
compares them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ..settings import RankingSettings

__all__ = ["Normalisation", "convex", "fuse", "mix_rerank", "normalise", "ranked", "rrf"]

Scores = Mapping[str, float]
Normalisation = Literal["minmax", "zscore"]


def normalise(scores: Scores, how: Normalisation = "minmax") -> dict[str, float]:
    """Per-query rescaling: min-max to [0, 1], or z-scores (mean 0, sd 1)."""
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if how == "minmax":
        low, span = float(values.min()), float(values.max() - values.min())
        scaled = (values - low) / span if span > 0 else np.ones_like(values)
    else:
        sd = float(values.std())
        scaled = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    return dict(zip(scores.keys(), scaled.tolist(), strict=True))


def convex(
    stages: Mapping[str, Scores],
    weights: Mapping[str, float],
    *,
    how: Normalisation = "minmax",
) -> dict[str, float]:
    """Weighted sum of normalised stage scores over the union of candidates.

    A candidate a stage did not return gets that stage's lowest normalised score: it was not
    among the stage's best, which is all the stage says about it.
    """
    out: dict[str, float] = {}
    union = {key for scores in stages.values() for key in scores}
    for name, scores in stages.items():
        weight = weights.get(name, 0.0)
        if weight == 0.0 or not scores:
            continue
        norm = normalise(scores, how)
        floor = min(norm.values())
        for key in union:
            out[key] = out.get(key, 0.0) + weight * norm.get(key, floor)
    for key in union:
        out.setdefault(key, 0.0)
    return out


def rrf(
    rankings: Mapping[str, Sequence[str]],
    *,
    k: int = 60,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Reciprocal rank fusion: sum of weight / (k + rank) over the rankings a key appears in."""
    out: dict[str, float] = {}
    for name, keys in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 0.0)
        for rank, key in enumerate(keys, start=1):
            out[key] = out.get(key, 0.0) + weight / (k + rank)
    return out


def ranked(scores: Scores) -> list[str]:
    """Keys best first; ties broken by key so results are deterministic."""
    return sorted(scores, key=lambda key: (-scores[key], key))


def mix_rerank(
    fused: Scores, rerank: Scores, *, weight: float, how: Normalisation = "zscore"
) -> dict[str, float]:
    """Final scores: ``fused + weight·norm(rerank)``. A candidate the reranker did not score
    (beyond its depth) gets the reranker's lowest normalised score."""
    if not rerank or weight == 0.0:
        return dict(fused)
    norm = normalise(rerank, how)
    floor = min(norm.values())
    return {c: s + weight * norm.get(c, floor) for c, s in fused.items()}


def fuse(sparse: Scores, dense: Scores, ranking: RankingSettings) -> dict[str, float]:
    """The retriever's fusion of its two candidate stages, as configured."""
    weights = {"bm25": ranking.bm25_weight, "dense": ranking.dense_weight}
    if ranking.fusion == "rrf":
        return rrf(
            {"bm25": ranked(sparse), "dense": ranked(dense)}, k=ranking.rrf_k, weights=weights
        )
    return convex({"bm25": sparse, "dense": dense}, weights, how=ranking.fusion)
