"""Prompt-injection and jailbreak detector: the input guardrail.

One logistic regression over two explainable feature groups, trained by
``shared.guardrails.injection_train`` and shipped as a small JSON file (``models/``):

1. **scored rules** (:mod:`.injection_rules`): named patterns for the known attack families
   (instruction override, prompt leaking, persona jailbreaks, context override, chat-template
   delimiters, obfuscation), each hit a binary feature, plus their noisy-OR score. They carry
   most of the recall on phrasings rare in any one training set, and name what fired;
2. **character n-grams** (2-5, inside word boundaries, sublinear TF-IDF): robust to inflection,
   German compounds and typos, language-agnostic.

Trained on every public prompt set at once (deepset's injections, jailbreak-classification's
role-play and jailbreaks) plus self-written hard negatives. The decision threshold in the model
file was chosen on near-duplicate-grouped out-of-fold scores so that each set's false-positive
rate stays under its own budget (3 % deepset-style, 6 % jailbreak-style benign prompts: margin
under the 5 % and 10 % targets). Run time is pure Python
and numpy: no scikit-learn, no model download, well under a millisecond per prompt.

A MiniLM sentence-embedding feature was measured on the same grouped folds (issue 10): it does
not help on deepset-style prompts (MiniLM is English-only and a third of them are German; leave-
deepset-out recall at 5 % FPR 0.79 with it, 0.85 without) and adds 8-20 ms per prompt, so it is
left out.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.contracts import GuardrailVerdict

from .injection_rules import RULES, Rule, RuleHit, match_rules, noisy_or

__all__ = [
    "DEFAULT_MODEL",
    "FORMAT",
    "InjectionDetector",
    "InjectionResult",
    "InjectionScreen",
    "char_wb_ngrams",
    "rule_features",
    "rule_hits",
]

FORMAT = "guardrails.injection/v1"
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "injection.json"

# Long inputs: rules run over overlapping windows so regex cost stays linear.
_RULE_WINDOW = 6000
_RULE_OVERLAP = 300

_WS2 = re.compile(r"\s\s+")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)

Vector = npt.NDArray[np.float64]


# ------------------------------------------------------------------ features (shared with training)
def preprocess(text: str) -> str:
    """NFKC-fold, drop zero-width characters, lowercase, squeeze whitespace runs."""
    folded = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    return _WS2.sub(" ", folded)


def char_wb_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Character n-grams inside word boundaries (scikit-learn's ``char_wb`` scheme).

    Each whitespace-separated token is padded with one space on each side; a token shorter
    than ``n`` yields itself once.
    """
    out: list[str] = []
    for token in preprocess(text).split():
        word = f" {token} "
        for n in range(lo, hi + 1):
            if len(word) <= n:
                out.append(word)
                break
            out.extend(word[i : i + n] for i in range(len(word) - n + 1))
    return out


def _windows(text: str) -> Iterator[str]:
    if len(text) <= _RULE_WINDOW:
        yield text
        return
    for start in range(0, len(text), _RULE_WINDOW - _RULE_OVERLAP):
        yield text[start : start + _RULE_WINDOW]


def rule_hits(text: str, rules: tuple[Rule, ...] = RULES) -> list[RuleHit]:
    """Rule hits over the whole text (windowed for long inputs), one per rule."""
    seen: dict[str, RuleHit] = {}
    for window in _windows(text):
        for hit in match_rules(window, rules):
            seen.setdefault(hit.name, hit)
    return list(seen.values())


def rule_features(hits: Sequence[RuleHit], rule_names: Sequence[str]) -> Vector:
    """One binary feature per rule, then the noisy-OR of the hits' weights."""
    index = {n: i for i, n in enumerate(rule_names)}
    vector = np.zeros(len(rule_names) + 1, dtype=np.float64)
    for hit in hits:
        if hit.name in index:
            vector[index[hit.name]] = 1.0
    vector[-1] = noisy_or([h.weight for h in hits])
    return vector


class TfidfFeaturizer:
    """Sublinear TF x smoothed IDF, L2-normalised, over a fixed vocabulary."""

    def __init__(self, vocab: Sequence[str], idf: Sequence[float], lo: int, hi: int) -> None:
        self.vocab = {g: i for i, g in enumerate(vocab)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.lo, self.hi = lo, hi

    def transform_one(self, text: str) -> tuple[npt.NDArray[np.int64], Vector]:
        counts = Counter(g for g in char_wb_ngrams(text, self.lo, self.hi) if g in self.vocab)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        idx = np.fromiter((self.vocab[g] for g in counts), dtype=np.int64, count=len(counts))
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        values = tf * self.idf[idx]
        values /= np.linalg.norm(values)
        return idx, values


# ------------------------------------------------------------------ detector
@dataclass(frozen=True)
class InjectionResult:
    score: float
    is_injection: bool
    threshold: float
    #: Rules that fired, then the n-grams that pushed the score up most.
    signals: tuple[str, ...]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class InjectionDetector:
    """Scores prompts with a model file written by the training script."""

    def __init__(self, model: dict[str, Any], *, threshold: float | None = None) -> None:
        if model.get("format") != FORMAT:
            raise ValueError("not an injection model file")
        lo, hi = model["ngram_range"]
        self._tfidf = TfidfFeaturizer(model["vocab"], model["idf"], lo, hi)
        self._coef_char = np.asarray(model["coef_char"], dtype=np.float64)
        self._rule_names: list[str] = list(model["rule_names"])
        known = {r.name for r in RULES}
        missing = [n for n in self._rule_names if n not in known]
        if missing:
            raise ValueError(f"model refers to rules that no longer exist: {missing}")
        self._rules = tuple(r for r in RULES if r.name in set(self._rule_names))
        self._coef_rules = np.asarray(model["coef_rules"], dtype=np.float64)
        self._intercept = float(model["intercept"])
        self.threshold = float(threshold if threshold is not None else model["threshold"])
        self.version = str(model.get("version", "v1"))

    @classmethod
    def load(
        cls, path: Path = DEFAULT_MODEL, *, threshold: float | None = None
    ) -> InjectionDetector:
        return cls(json.loads(path.read_text(encoding="utf-8")), threshold=threshold)

    def score(self, text: str, *, top_k: int = 3) -> InjectionResult:
        hits = rule_hits(text, self._rules)
        features = rule_features(hits, self._rule_names)
        idx, values = self._tfidf.transform_one(text)
        contrib = self._coef_char[idx] * values
        z = self._intercept + float(contrib.sum()) + float(features @ self._coef_rules)
        signals = [f"rule:{h.name}" for h in hits]
        if top_k and len(idx):
            for j in np.argsort(-contrib)[:top_k]:
                if contrib[j] <= 0:
                    break
                signals.append(f"ngram:{self._inverse_vocab[int(idx[j])]!r}")
        probability = _sigmoid(z)
        return InjectionResult(
            probability, probability >= self.threshold, self.threshold, tuple(signals)
        )

    @cached_property
    def _inverse_vocab(self) -> list[str]:
        inverse = [""] * len(self._tfidf.vocab)
        for gram, i in self._tfidf.vocab.items():
            inverse[i] = gram
        return inverse


class InjectionScreen:
    """The :class:`~shared.guardrails.InputScreen` over the detector."""

    def __init__(self, detector: InjectionDetector) -> None:
        self._detector = detector

    def screen(self, text: str) -> GuardrailVerdict:
        result = self._detector.score(text)
        # Rules always explain; n-grams only explain a block (on benign text they are noise).
        signals = [s for s in result.signals if result.is_injection or s.startswith("rule:")]
        return GuardrailVerdict(
            stage="input",
            blocked=result.is_injection,
            score=round(result.score, 6),
            signals=tuple(signals),
            detector=f"injection-lr-{self._detector.version}@{result.threshold:.4f}",
        )
