"""Scores of a set of verdicts: per kind, and overall.

Rates are shares between 0 and 1, or None where nothing in the set is measured by them (no
case asks for a citation, no citation was given). Fact recall and citation accuracy are
micro-averaged: each fact and each citation weighs the same, whichever case it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from .dataset import KINDS
from .verdict import CaseVerdict

__all__ = ["GATED_SCORES", "Scores", "score", "scores_by_kind"]

#: Quality scores, higher is better: the gate fails when one drops beyond the tolerance.
#: Latency and cost are reported against the baseline too, but machines differ too much in
#: speed for them to gate.
GATED_SCORES: tuple[str, ...] = (
    "pass_rate",
    "grounded_rate",
    "fact_recall",
    "citation_accuracy",
    "refusal_accuracy",
    "action_correctness",
)


class Scores(BaseModel):
    model_config = ConfigDict(frozen=True)

    cases: int
    passed: int
    pass_rate: float | None
    grounded_rate: float | None
    fact_recall: float | None
    citation_accuracy: float | None
    refusal_accuracy: float | None
    action_correctness: float | None
    permission_leaks: int
    errors: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    input_tokens: int
    output_tokens: int
    tokens_per_case: float | None
    cost_usd: float
    cost_per_case_usd: float | None

    def value(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)


def score(verdicts: Sequence[CaseVerdict]) -> Scores:
    n = len(verdicts)
    must_cite = [v.grounded for v in verdicts if v.grounded is not None]
    facts = sum(len(v.facts_found) + len(v.facts_missing) for v in verdicts)
    refusals = [v.refusal_ok for v in verdicts if v.refusal_ok is not None]
    checked = sum(v.citations_checked for v in verdicts)
    latencies = [v.latency_ms for v in verdicts if v.latency_ms is not None]
    with_tokens = [v for v in verdicts if v.input_tokens is not None]
    input_tokens = sum(v.input_tokens or 0 for v in with_tokens)
    output_tokens = sum(v.output_tokens or 0 for v in with_tokens)
    costed = [v.cost_usd for v in verdicts if v.cost_usd is not None]
    return Scores(
        cases=n,
        passed=sum(v.passed for v in verdicts),
        pass_rate=_share(sum(v.passed for v in verdicts), n),
        grounded_rate=_share(sum(must_cite), len(must_cite)),
        fact_recall=_share(sum(len(v.facts_found) for v in verdicts), facts),
        citation_accuracy=_share(sum(v.citations_supported for v in verdicts), checked),
        refusal_accuracy=_share(sum(refusals), len(refusals)),
        action_correctness=_share(sum(v.action_ok for v in verdicts), n),
        permission_leaks=sum(bool(v.leaks) for v in verdicts),
        errors=sum(v.error is not None for v in verdicts),
        latency_ms_p50=_percentile(latencies, 50),
        latency_ms_p95=_percentile(latencies, 95),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tokens_per_case=(
            (input_tokens + output_tokens) / len(with_tokens) if with_tokens else None
        ),
        cost_usd=sum(costed),
        cost_per_case_usd=sum(costed) / len(costed) if costed else None,
    )


def scores_by_kind(verdicts: Sequence[CaseVerdict]) -> dict[str, Scores]:
    """Scores of each kind present, in the dataset's kind order."""
    return {
        kind: score([v for v in verdicts if v.kind == kind])
        for kind in KINDS
        if any(v.kind == kind for v in verdicts)
    }


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.array(values), q)) if values else None
