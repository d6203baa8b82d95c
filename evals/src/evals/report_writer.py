"""Writing the report: JSON as the model dumps it, Markdown for people (and CI artifacts).

The Markdown puts what a reviewer needs first: the gate's verdict and why, the scores per
kind, what changed against the baseline, then every case with newly failing ones on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .baseline import BaselineDiff
from .dataset import Case
from .report import EvalReport
from .scores import Scores
from .verdict import CaseVerdict

__all__ = ["render_markdown", "write_reports"]

_ANSWER_CHARS = 400


def write_reports(
    report: EvalReport, cases: Sequence[Case], *, markdown: Path, json_path: Path
) -> None:
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    markdown.write_text(render_markdown(report, cases), encoding="utf-8")


def render_markdown(report: EvalReport, cases: Sequence[Case]) -> str:
    lines: list[str] = []
    lines += _verdict(report)
    lines += _scores(report)
    lines += _against_baseline(report.baseline)
    lines += _cases(report, {c.id: c for c in cases})
    lines += _latency_and_cost(report)
    lines += _unusable_inputs(report)
    return "\n".join(lines).rstrip() + "\n"


def _verdict(report: EvalReport) -> list[str]:
    run = report.run
    gate = report.gate
    overall = report.overall
    baseline = report.baseline
    if baseline is None:
        compared = "none found"
    elif baseline.applicable:
        compared = f"{baseline.path}, recorded {baseline.recorded_at}"
    else:
        compared = f"{baseline.path} does not apply: {baseline.why_not}"
    return [
        "# Evaluation report",
        "",
        f"**Gate: {'passed' if gate.passed else 'FAILED'}**"
        f" ({overall.passed} of {overall.cases} cases pass, {_rate(overall.pass_rate)})",
        "",
        *(f"- ✗ {_cell(f)}" for f in gate.failures),
        *(f"- ✓ {_cell(p)}" for p in gate.passes),
        "",
        "| | |",
        "|---|---|",
        f"| Stack | {run.stack}: {_cell(run.stack_reason)} |",
        f"| Dataset | {run.dataset}: {overall.cases} cases run,"
        f" {len(report.dataset_errors)} lines skipped |",
        f"| Knowledge base | {run.knowledge_base}: {run.documents} documents,"
        f" {len(report.ingest_failures)} files not ingested |",
        f"| Baseline | {_cell(compared)} |",
        f"| Run | {run.started_at}, {run.duration_s:.0f} s, {run.concurrency} cases at a time,"
        f" {run.case_timeout_s:.0f} s per case |",
        "",
    ]


_SCORE_COLUMNS = (
    ("pass rate", "pass_rate"),
    ("grounded", "grounded_rate"),
    ("fact recall", "fact_recall"),
    ("citation accuracy", "citation_accuracy"),
    ("refusal accuracy", "refusal_accuracy"),
    ("action correctness", "action_correctness"),
)


def _scores(report: EvalReport) -> list[str]:
    header = ["kind", "cases", "passed", *(label for label, _ in _SCORE_COLUMNS), "leaks", "errors"]
    rows = [_score_row(kind, s) for kind, s in report.kinds.items()]
    rows.append(_score_row("**all**", report.overall))
    return [
        "## Scores per kind",
        "",
        "Shares between 0 and 1; a dash where nothing of that kind is measured by the score"
        " (docs/evaluation.md says what each one measures).",
        "",
        *_table(header, rows),
        "",
    ]


def _score_row(label: str, s: Scores) -> list[str]:
    return [
        label,
        str(s.cases),
        str(s.passed),
        *(_rate(s.value(name)) for _, name in _SCORE_COLUMNS),
        str(s.permission_leaks),
        str(s.errors),
    ]


def _against_baseline(diff: BaselineDiff | None) -> list[str]:
    lines = ["## Against the baseline", ""]
    if diff is None:
        return [*lines, "No baseline to compare with (write one with `--update-baseline`).", ""]
    if not diff.applicable:
        return [*lines, f"{diff.path} does not apply: {diff.why_not}.", ""]
    lines.append(f"Compared with {diff.path} (recorded {diff.recorded_at}).")
    lines.append("")
    lines.append(f"### Newly failing ({len(diff.newly_failing)})")
    lines.append("")
    lines += [f"- `{c.id}` ({c.kind}): {_cell('; '.join(c.reasons))}" for c in diff.newly_failing]
    lines += ["- none"] if not diff.newly_failing else []
    lines.append("")
    lines.append(f"### Newly passing ({len(diff.newly_passing)})")
    lines.append("")
    lines += [
        f"- `{c.id}` ({c.kind}), failed before: {_cell('; '.join(c.reasons))}"
        for c in diff.newly_passing
    ]
    lines += ["- none"] if not diff.newly_passing else []
    lines.append("")
    if diff.new_cases:
        lines += [f"New cases, not in the baseline: {', '.join(diff.new_cases)}", ""]
    if diff.missing_cases:
        lines += [f"Baseline cases not run this time: {', '.join(diff.missing_cases)}", ""]
    changed = [
        c for c in diff.changes if c.dropped or (c.delta is not None and abs(c.delta) > 1e-9)
    ]
    lines.append("### Score changes")
    lines.append("")
    lines.append(
        f"Quality scores gate at a drop of more than {diff.tolerance:.3f}; latency and cost"
        " are shown, not gated. Unchanged scores are not listed."
    )
    lines.append("")
    if not changed:
        return [*lines, "No score changed.", ""]
    rows = [
        [
            c.scope,
            c.score,
            _number(c.baseline, c.score),
            _number(c.current, c.score),
            _signed(c.delta, c.score),
            "**✗ beyond tolerance**" if c.dropped else ("gated" if c.gated else "shown"),
        ]
        for c in changed
    ]
    return [*lines, *_table(["scope", "score", "baseline", "now", "change", ""], rows), ""]


def _cases(report: EvalReport, cases: dict[str, Case]) -> list[str]:
    newly = {c.id for c in report.baseline.newly_failing} if report.baseline else set()
    ordered = sorted(
        report.cases,
        key=lambda v: (v.id not in newly, v.passed),
    )
    rows = [
        [
            f"`{v.id}`",
            v.kind,
            ("FAIL (new)" if v.id in newly else "FAIL") if not v.passed else "pass",
            _cell("; ".join(v.reasons)) or "",
            v.status or "-",
            _number(v.latency_ms, "latency_ms"),
            "-" if v.input_tokens is None else str(v.input_tokens + (v.output_tokens or 0)),
            _number(v.cost_usd, "cost_usd"),
        ]
        for v in ordered
    ]
    lines = [
        "## Cases",
        "",
        "Newly failing first, then the other failures, then the passes.",
        "",
        *_table(["case", "kind", "verdict", "why", "status", "ms", "tokens", "USD"], rows),
        "",
    ]
    failing = [v for v in ordered if not v.passed]
    if failing:
        lines += ["### What the failing cases got", ""]
        for v in failing:
            lines += _detail(v, cases.get(v.id))
    return lines


def _detail(v: CaseVerdict, case: Case | None) -> list[str]:
    answer = v.answer if len(v.answer) <= _ANSWER_CHARS else v.answer[:_ANSWER_CHARS] + " ..."
    out = [f"- `{v.id}` ({v.kind}, as {v.user_id})"]
    if case is not None:
        out.append(f"  - asked: {_cell(case.input)}")
        if case.expected:
            out.append(f"  - expected: {_cell(', '.join(case.expected))}")
    out.append(f"  - answer: {_cell(answer) or '(none)'}")
    out.append(f"  - cited: {', '.join(v.cited_docs) or 'nothing'}")
    if v.action is not None:
        out.append(f"  - action: {_cell(str(v.action))}")
    out.append("")
    return out


def _latency_and_cost(report: EvalReport) -> list[str]:
    o = report.overall
    rows = [
        [
            kind,
            _number(s.latency_ms_p50, "latency_ms"),
            _number(s.latency_ms_p95, "latency_ms"),
            _number(s.tokens_per_case, "tokens"),
            _number(s.cost_per_case_usd, "cost_usd"),
        ]
        for kind, s in [*report.kinds.items(), ("**all**", o)]
    ]
    slowest = sorted(
        (v for v in report.cases if v.latency_ms is not None),
        key=lambda v: -(v.latency_ms or 0),
    )[:5]
    unpriced = sorted({m for v in report.cases for m in v.unpriced_models})
    unknown_tokens = [v.id for v in report.cases if v.input_tokens is None]
    lines = [
        "## Latency and cost",
        "",
        "Latency is the whole saga as a client sees it, from the POST to a settled request,"
        f" with {report.run.concurrency} cases in flight.",
        "",
        *_table(["kind", "p50 ms", "p95 ms", "tokens per case", "USD per case"], rows),
        "",
        f"Slowest: {', '.join(f'`{v.id}` {v.latency_ms:.0f} ms' for v in slowest) or 'none'}.",
        "",
        f"Tokens: {o.input_tokens} in, {o.output_tokens} out; cost {o.cost_usd:.4f} USD in all"
        f" (prices: {report.run.prices}).",
    ]
    if unpriced:
        lines.append(f"No price for {', '.join(unpriced)}: their tokens are not in the cost.")
    if unknown_tokens:
        lines.append(
            f"No trace arrived for {len(unknown_tokens)} cases ({', '.join(unknown_tokens[:10])}"
            f"{' ...' if len(unknown_tokens) > 10 else ''}): their tokens are unknown."
        )
    return [*lines, ""]


def _unusable_inputs(report: EvalReport) -> list[str]:
    if not report.dataset_errors and not report.ingest_failures:
        return []
    lines = ["## Inputs that could not be used", ""]
    if report.dataset_errors:
        lines += ["Dataset lines skipped:", ""]
        lines += [f"- {_cell(e)}" for e in report.dataset_errors]
        lines.append("")
    if report.ingest_failures:
        lines += ["Knowledge-base files not ingested:", ""]
        lines += [f"- {_cell(f)}" for f in report.ingest_failures]
        lines.append("")
    return lines


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        f"| {' | '.join(header)} |",
        f"|{'|'.join('---' for _ in header)}|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    if "cost" in name or "usd" in name:
        return f"{value:.4f}"
    if "latency" in name or "tokens" in name:
        return f"{value:.0f}"
    if name == "permission_leaks":
        return f"{value:.0f}"
    return f"{value:.3f}"


def _signed(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    shown = _number(abs(value), name)
    return f"+{shown}" if value >= 0 else f"-{shown}"
