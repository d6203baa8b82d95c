"""The gate: whether a run may pass, and in plain words why it did or did not.

Three rules, each failing the run on its own:

1. the overall pass rate is under ``min_pass_rate``;
2. any permission leak, whatever the rest looks like;
3. any quality score (overall or of one kind) fell by more than ``tolerance`` against the
   committed baseline. ``--update-baseline`` accepts the new scores on purpose, so this rule
   is then reported but does not fail the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from .baseline import BaselineDiff
from .scores import Scores
from .verdict import CaseVerdict

__all__ = ["GateResult", "GateRules", "decide"]


@dataclass(frozen=True)
class GateRules:
    min_pass_rate: float = 0.80
    tolerance: float = 0.03
    #: ``--update-baseline``: drops are accepted, the other two rules still apply.
    accept_drops: bool = False


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    #: Why the run failed (empty when it passed).
    failures: list[str]
    #: What was checked and found fine, for the report's "why it passed".
    passes: list[str]


def decide(
    overall: Scores,
    verdicts: list[CaseVerdict],
    diff: BaselineDiff | None,
    rules: GateRules,
    *,
    baseline_path: str,
) -> GateResult:
    failures: list[str] = []
    passes: list[str] = []

    rate = overall.pass_rate
    if rate is None or rate < rules.min_pass_rate:
        shown = "none (no case ran)" if rate is None else f"{rate:.3f}"
        failures.append(
            f"overall pass rate {shown} is under the threshold {rules.min_pass_rate:.2f}"
        )
    else:
        passes.append(f"overall pass rate {rate:.3f} is at least {rules.min_pass_rate:.2f}")

    leaking = [v.id for v in verdicts if v.leaks]
    if leaking:
        failures.append(
            f"{len(leaking)} permission leak{'s' if len(leaking) > 1 else ''}: {', '.join(leaking)}"
        )
    else:
        passes.append("no permission leak")

    if diff is None:
        passes.append(f"no score compared: no baseline at {baseline_path}")
    elif not diff.applicable:
        passes.append(f"no score compared: the baseline does not apply ({diff.why_not})")
    else:
        drops = [
            f"{c.scope} {c.score} fell by {(c.baseline or 0) - (c.current or 0):.3f}"
            f" ({c.baseline:.3f} -> {c.current:.3f})"
            for c in diff.drops
        ]
        if drops and rules.accept_drops:
            passes.append(
                f"{len(drops)} score drop{'s' if len(drops) > 1 else ''} beyond"
                f" {rules.tolerance:.3f} accepted by --update-baseline: {'; '.join(drops)}"
            )
        elif drops:
            failures += [f"{d}, more than the tolerance {rules.tolerance:.3f}" for d in drops]
        else:
            passes.append(
                f"no quality score fell by more than {rules.tolerance:.3f} against {diff.path}"
            )
    return GateResult(passed=not failures, failures=failures, passes=passes)
