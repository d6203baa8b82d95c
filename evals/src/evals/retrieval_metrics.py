"""Ranking quality with trec_eval's definitions (through ir-measures), as BEIR reports them,
and query folds for cross-validation that do not leak documents between folds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import ir_measures
import numpy as np
from ir_measures import R, nDCG

__all__ = ["evaluate", "grouped_folds", "ndcg_per_query"]

NDCG10 = nDCG @ 10
RECALL100 = R @ 100


def evaluate(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 of ``run`` (query → doc ids, best first) over ``qrels``'
    queries; a query with no results counts as zero."""
    scored = {q: _as_scores(docs) for q, docs in run.items()}
    # BEIR averages over every judged query: a query the run misses scores zero.
    results = ir_measures.calc_aggregate(
        [NDCG10, RECALL100],
        {q: dict(rels) for q, rels in qrels.items()},
        {q: scored.get(q) or {"<none>": 0.0} for q in qrels},
    )
    return {"ndcg@10": float(results[NDCG10]), "recall@100": float(results[RECALL100])}


def ndcg_per_query(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """nDCG@10 of each judged query (zero for a query the run has no result for)."""
    scored = {q: _as_scores(docs) for q, docs in run.items() if docs}
    found = {m.query_id: float(m.value) for m in ir_measures.iter_calc([NDCG10], qrels, scored)}
    return {q: found.get(q, 0.0) for q in qrels}


def _as_scores(docs: Sequence[str]) -> dict[str, float]:
    return {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}


def grouped_folds(
    qrels: Mapping[str, Mapping[str, int]], k: int, seed: int = 13
) -> list[list[str]]:
    """``k`` folds of query ids in which queries sharing a relevant document (transitively)
    stay together: otherwise a held-out query's answer was seen while tuning."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for query, docs in qrels.items():
        for doc in docs:
            parent[find(f"d:{doc}")] = find(f"q:{query}")
    groups: dict[str, list[str]] = defaultdict(list)
    for query in qrels:
        groups[find(f"q:{query}")].append(query)
    ordered = list(groups.values())
    np.random.default_rng(seed).shuffle(ordered)
    ordered.sort(key=len, reverse=True)
    folds: list[list[str]] = [[] for _ in range(k)]
    for group in ordered:  # largest groups first, each into the smallest fold
        min(folds, key=len).extend(group)
    return folds
