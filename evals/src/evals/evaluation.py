"""From what the run saw to the report: verdicts, scores, the baseline diff and the gate.

No I/O: the runner collects the observations, tests hand in synthetic ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from .baseline import Baseline, compare
from .dataset import Case
from .gate import GateRules, decide
from .observation import Observation
from .permissions import AccessOracle
from .pricing import PriceTable
from .report import EvalReport, RunInfo
from .scores import score, scores_by_kind
from .verdict import judge

__all__ = ["evaluate"]


def evaluate(
    cases: Sequence[Case],
    observations: Sequence[Observation],
    *,
    oracle: AccessOracle,
    prices: PriceTable,
    rules: GateRules,
    run: RunInfo,
    baseline: Baseline | None,
    baseline_path: str,
    dataset_errors: Sequence[str] = (),
    ingest_failures: Sequence[str] = (),
) -> EvalReport:
    seen = {o.case_id: o for o in observations}
    missing = [c.id for c in cases if c.id not in seen]
    if missing:
        raise ValueError(f"no observation for {', '.join(missing)}")
    verdicts = [judge(c, seen[c.id], oracle, prices) for c in cases]
    overall = score(verdicts)
    kinds = scores_by_kind(verdicts)
    diff = (
        compare(
            baseline,
            path=baseline_path,
            dataset=run.dataset,
            knowledge_base=run.knowledge_base,
            overall=overall,
            kinds=kinds,
            verdicts=verdicts,
            tolerance=rules.tolerance,
        )
        if baseline is not None
        else None
    )
    gate = decide(overall, verdicts, diff, rules, baseline_path=baseline_path)
    return EvalReport(
        run=run,
        dataset_errors=list(dataset_errors),
        ingest_failures=list(ingest_failures),
        overall=overall,
        kinds=kinds,
        gate=gate,
        baseline=diff,
        cases=verdicts,
    )
