"""Training of the injection detector (numpy + scipy; never imported at run time).

The benchmark's cross-validation trains exactly what ships: ``evals.bench_guardrails`` calls
:func:`train_model` per fold and scores through the run-time :class:`InjectionDetector`.

The decision threshold never looks at evaluation data: :func:`train_model` computes
out-of-fold scores on its *own* training texts (k-fold over near-duplicate groups when given,
vocabulary and weights refitted per fold) and picks the lowest threshold whose out-of-fold
false-positive rate is at most ``target_fpr`` on *every* public source separately, so the set
with the hardest benign prompts (jailbreak-style role-play) sets the bar, not the average.

Hard negatives: the benign class of the public training set is narrow (short news and
politics questions), so a model trained on it alone learns that "ignore", "instructions",
"act as" mean injection. ``training/injection_augment.jsonl`` (self-written: benign
support-desk prompts that use those words, and injections of families the public set lacks)
is always part of training and threshold selection, never of an evaluation fold.

Logistic regression: L2-regularised, class-balanced, fitted with L-BFGS (scipy).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .injection import FORMAT, Vector, char_wb_ngrams, rule_features, rule_hits
from .injection_data import grouped_folds, load_jsonl
from .injection_rules import RULES, RuleHit

__all__ = [
    "AUGMENT",
    "FeatureCache",
    "load_jsonl",
    "pick_threshold",
    "stratified_folds",
    "train_model",
]

AUGMENT = Path(__file__).resolve().parent / "training" / "injection_augment.jsonl"
Labels = npt.NDArray[np.int64]


class FeatureCache:
    """Per-text n-gram counts and rule hits; both are independent of what is trained."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self._ngrams: dict[str, Counter[str]] = {}
        self._rules: dict[str, list[RuleHit]] = {}

    def ngrams(self, text: str) -> Counter[str]:
        if text not in self._ngrams:
            self._ngrams[text] = Counter(char_wb_ngrams(text, self.lo, self.hi))
        return self._ngrams[text]

    def rules(self, text: str) -> list[RuleHit]:
        if text not in self._rules:
            self._rules[text] = rule_hits(text)
        return self._rules[text]


def stratified_folds(labels: Labels, k: int, seed: int) -> list[npt.NDArray[np.int64]]:
    """``k`` test-index arrays, each class spread evenly, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        for i, index in enumerate(members):
            folds[i % k].append(int(index))
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


def pick_threshold(scores: Vector, labels: Labels, target_fpr: float) -> float:
    """Lowest threshold whose false-positive rate on ``(scores, labels)`` is <= target."""
    negatives = np.sort(scores[labels == 0])[::-1]
    k = math.floor(target_fpr * len(negatives))
    if k >= len(negatives):
        return float(negatives[-1])
    return float(np.nextafter(negatives[k], np.inf))


def _vocabulary(texts: Sequence[str], cache: FeatureCache, min_df: int) -> tuple[list[str], Vector]:
    df: Counter[str] = Counter()
    for text in texts:
        df.update(cache.ngrams(text).keys())
    vocab = sorted(g for g, c in df.items() if c >= min_df)
    n = len(texts)
    return vocab, np.array([math.log((1 + n) / (1 + df[g])) + 1.0 for g in vocab])


def _design(
    texts: Sequence[str], vocab: list[str], idf: Vector, cache: FeatureCache
) -> Any:  # scipy.sparse.csr_matrix
    from scipy import sparse

    index = {g: i for i, g in enumerate(vocab)}
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for r, text in enumerate(texts):
        items = [(index[g], c) for g, c in cache.ngrams(text).items() if g in index]
        if not items:
            continue
        ci = np.array([i for i, _ in items], dtype=np.int64)
        v = (1.0 + np.log(np.array([c for _, c in items], dtype=np.float64))) * idf[ci]
        v /= np.linalg.norm(v)
        rows += [r] * len(items)
        cols += ci.tolist()
        values += v.tolist()
    tfidf = sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), len(vocab)))
    names = [r.name for r in RULES]
    rules = sparse.csr_matrix(np.vstack([rule_features(cache.rules(t), names) for t in texts]))
    return sparse.hstack([tfidf, rules]).tocsr()


def _fit_logistic(x: Any, y: Labels, c: float) -> tuple[Vector, float]:
    """Class-balanced L2 logistic regression; the intercept is not regularised."""
    from scipy.optimize import minimize

    n, d = x.shape
    counts = np.bincount(y, minlength=2)
    weights = np.where(y == 1, n / (2 * counts[1]), n / (2 * counts[0]))
    signs = np.where(y == 1, 1.0, -1.0)

    def loss(params: Vector) -> tuple[float, Vector]:
        w, b = params[:d], params[d]
        margin = signs * (x @ w + b)
        value = float(np.sum(weights * np.logaddexp(0.0, -margin)) + 0.5 * (w @ w) / c)
        slope = -weights * signs / (1.0 + np.exp(margin))
        grad = np.concatenate([x.T @ slope + w / c, [slope.sum()]])
        return value, grad

    result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return result.x[:d], float(result.x[d])


def _fit(
    texts: Sequence[str], y: Labels, cache: FeatureCache, c: float, min_df: int
) -> tuple[list[str], Vector, Vector, float]:
    vocab, idf = _vocabulary(texts, cache, min_df)
    coef, intercept = _fit_logistic(_design(texts, vocab, idf, cache), y, c)
    return vocab, idf, coef, intercept


def _score(
    texts: Sequence[str], fitted: tuple[list[str], Vector, Vector, float], cache: FeatureCache
) -> Vector:
    vocab, idf, coef, intercept = fitted
    z = _design(texts, vocab, idf, cache) @ coef + intercept
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def train_model(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    extra_texts: Sequence[str] = (),
    extra_labels: Sequence[int] = (),
    c: float = 10.0,
    ngram_range: tuple[int, int] = (2, 5),
    min_df: int = 2,
    target_fpr: float = 0.03,
    threshold_folds: int = 5,
    threshold_repeats: int = 1,
    cache: FeatureCache | None = None,
    seed: int = 0,
    sources: Sequence[str] | None = None,
    groups: Sequence[int] | None = None,
    target_fpr_by_source: dict[str, float] | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the detector; return the JSON-serialisable model the run time loads.

    ``sources`` (one name per text) makes the threshold meet ``target_fpr`` on each source's
    benign prompts; ``groups`` (near-duplicate clusters) keeps paraphrases in one fold of the
    threshold's cross-validation. ``extra_*`` rows are always trained on and never constrain.
    """
    all_texts = [*texts, *extra_texts]
    y = np.asarray([*labels, *extra_labels], dtype=np.int64)
    n_main = len(texts)
    src = np.asarray([*(sources or ["train"] * n_main), *["extra"] * len(extra_texts)])
    grp = np.asarray(
        [*(groups if groups is not None else range(n_main)), *range(-len(extra_texts), 0)],
        dtype=np.int64,
    )
    cache = cache or FeatureCache(*ngram_range)
    per_source: dict[str, float] = {}
    for repeat in range(threshold_repeats):
        oof = np.zeros(len(all_texts))
        for test in grouped_folds(grp, y, threshold_folds, seed + 1000 + repeat):
            train = np.setdiff1d(np.arange(len(all_texts)), test)
            fitted = _fit([all_texts[i] for i in train], y[train], cache, c, min_df)
            oof[test] = _score([all_texts[i] for i in test], fitted, cache)
        for name in dict.fromkeys(src[:n_main]):
            mask = src == name
            if not (y[mask] == 0).any():
                continue
            budget = (target_fpr_by_source or {}).get(str(name), target_fpr)
            t = pick_threshold(oof[mask], y[mask], budget)
            per_source[name] = max(per_source.get(name, 0.0), t)
    threshold = max(per_source.values(), default=0.5)
    vocab, idf, coef, intercept = _fit(all_texts, y, cache, c, min_df)
    nv = len(vocab)

    def compact(values: Vector) -> list[float]:
        return [float(f"{v:.6g}") for v in values]

    return {
        "format": FORMAT,
        "version": "v1",
        "ngram_range": list(ngram_range),
        "min_df": min_df,
        "C": c,
        "target_fpr": target_fpr,
        "threshold": float(f"{threshold:.6g}"),
        "n_train": len(y),
        "n_positive": int(y.sum()),
        "n_extra": len(extra_texts),
        "threshold_per_source": {str(k): float(f"{v:.6g}") for k, v in per_source.items()},
        "intercept": float(f"{intercept:.6g}"),
        "rule_names": [r.name for r in RULES],
        "coef_rules": compact(coef[nv:]),
        "vocab": vocab,
        "idf": compact(idf),
        "coef_char": compact(coef[:nv]),
        "provenance": provenance or {},
    }
