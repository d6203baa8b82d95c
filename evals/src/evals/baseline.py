"""The committed baseline (evals/baseline.json) and a run's difference from it.

The baseline holds the scores (overall and per kind) and each case's verdict of a run that
was accepted on purpose (``--update-baseline``). A later run is compared case by case (newly
failing, newly passing) and score by score. It only applies to runs over the same dataset
file and knowledge base: another company's documents are not compared with ours.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .scores import GATED_SCORES, Scores
from .verdict import CaseVerdict

__all__ = [
    "Baseline",
    "BaselineCase",
    "BaselineDiff",
    "CaseChange",
    "ScoreChange",
    "compare",
    "load_baseline",
    "make_baseline",
]

SCHEMA_VERSION = 1
#: Reported with their change but never gated (see scores.GATED_SCORES).
INFORMATIONAL_SCORES: tuple[str, ...] = ("latency_ms_p50", "latency_ms_p95", "cost_per_case_usd")


class BaselineCase(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    passed: bool
    reasons: list[str] = []


class Baseline(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    recorded_at: str
    dataset: str
    knowledge_base: str
    stack: str
    overall: Scores
    kinds: dict[str, Scores]
    cases: dict[str, BaselineCase]


class CaseChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    reasons: list[str] = []


class ScoreChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    scope: str
    score: str
    baseline: float | None
    current: float | None
    gated: bool
    #: A gated score that fell by more than the tolerance.
    dropped: bool

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


class BaselineDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    recorded_at: str
    applicable: bool
    why_not: str | None = None
    tolerance: float
    newly_failing: list[CaseChange] = []
    newly_passing: list[CaseChange] = []
    new_cases: list[str] = []
    missing_cases: list[str] = []
    changes: list[ScoreChange] = []

    @property
    def drops(self) -> list[ScoreChange]:
        return [c for c in self.changes if c.dropped]


def load_baseline(path: Path) -> Baseline | None:
    if not path.exists():
        return None
    return Baseline.model_validate_json(path.read_text(encoding="utf-8"))


def make_baseline(
    *,
    recorded_at: str,
    dataset: str,
    knowledge_base: str,
    stack: str,
    overall: Scores,
    kinds: dict[str, Scores],
    verdicts: list[CaseVerdict],
) -> Baseline:
    return Baseline(
        recorded_at=recorded_at,
        dataset=dataset,
        knowledge_base=knowledge_base,
        stack=stack,
        overall=overall,
        kinds=kinds,
        cases={
            v.id: BaselineCase(kind=v.kind, passed=v.passed, reasons=v.reasons) for v in verdicts
        },
    )


def compare(
    baseline: Baseline,
    *,
    path: str,
    dataset: str,
    knowledge_base: str,
    overall: Scores,
    kinds: dict[str, Scores],
    verdicts: list[CaseVerdict],
    tolerance: float,
) -> BaselineDiff:
    head = {"path": path, "recorded_at": baseline.recorded_at, "tolerance": tolerance}
    if (baseline.dataset, baseline.knowledge_base) != (dataset, knowledge_base):
        return BaselineDiff(
            **head,
            applicable=False,
            why_not=f"it was recorded for dataset {baseline.dataset} on knowledge base"
            f" {baseline.knowledge_base}",
        )
    current = {v.id: v for v in verdicts}
    newly_failing = [
        CaseChange(id=v.id, kind=v.kind, reasons=v.reasons)
        for v in verdicts
        if not v.passed and v.id in baseline.cases and baseline.cases[v.id].passed
    ]
    newly_passing = [
        CaseChange(id=v.id, kind=v.kind, reasons=baseline.cases[v.id].reasons)
        for v in verdicts
        if v.passed and v.id in baseline.cases and not baseline.cases[v.id].passed
    ]
    changes = _changes("overall", baseline.overall, overall, tolerance)
    for kind, scores in kinds.items():
        if kind in baseline.kinds:
            changes += _changes(kind, baseline.kinds[kind], scores, tolerance)
    return BaselineDiff(
        **head,
        applicable=True,
        newly_failing=newly_failing,
        newly_passing=newly_passing,
        new_cases=[v.id for v in verdicts if v.id not in baseline.cases],
        missing_cases=[i for i in baseline.cases if i not in current],
        changes=changes,
    )


def _changes(scope: str, before: Scores, after: Scores, tolerance: float) -> list[ScoreChange]:
    out = []
    for name in (*GATED_SCORES, "permission_leaks", *INFORMATIONAL_SCORES):
        old, new = before.value(name), after.value(name)
        gated = name in GATED_SCORES
        # A small epsilon so that a drop of exactly the tolerance (one case in a set whose
        # share is the tolerance) is not decided by floating-point noise.
        dropped = gated and old is not None and new is not None and old - new > tolerance + 1e-9
        out.append(
            ScoreChange(
                scope=scope, score=name, baseline=old, current=new, gated=gated, dropped=dropped
            )
        )
    return out
