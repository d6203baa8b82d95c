"""``make eval``: the platform end to end on a throw-away stack, case by case, gated.

Every case of the dataset (default ``evals/dataset.jsonl``) is asked over HTTP as its
principal, against a stack that ingested the knowledge base (default
``deploy/knowledge-base``), at most ``--concurrency`` at a time. Each case gets a verdict with
its reasons; scores per kind and overall are compared with the committed baseline
(``evals/baseline.json``) and the gate decides:

- the overall pass rate must be at least ``--min-pass-rate``;
- no permission leak, ever;
- no quality score may fall by more than ``--tolerance`` against the baseline
  (``--update-baseline`` writes a new baseline on purpose instead).

Writes ``eval-report.md`` and ``eval-report.json`` at the repository root. Exit status: 0 the
gate passed, 1 it failed, 2 the eval could not run. docs/evaluation.md explains every score.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from devstack.stack import LocalStack
from retriever.settings import RetrieverSettings
from shared.auth import TokenService
from shared.settings import AuthSettings

from .asking import Asker, Reply
from .baseline import load_baseline, make_baseline
from .dataset import Case, load_dataset
from .evaluation import evaluate
from .gate import GateRules
from .observation import Observation, observe
from .permissions import AccessOracle
from .pricing import ModelUsage, load_prices
from .report import EvalReport, RunInfo
from .report_writer import write_reports
from .saga_record import SagaRecord
from .stack import throwaway_stack
from .trace_usage import collect_usage

REPO = Path(__file__).resolve().parents[3]
DATASET = REPO / "evals" / "dataset.jsonl"
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"
BASELINE = REPO / "evals" / "baseline.json"

#: Statuses after which the retriever's and the agent's messages exist for the request.
_DRAFTED = frozenset(
    {"answered", "refused", "pending_approval", "approved", "executed", "rejected", "expired"}
)
#: How long to wait, after the last reply, for the saga's messages and the traces to arrive.
_SETTLE_S = 20.0

EXIT_PASSED, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.dataset.is_file():
        print(f"error: no dataset at {args.dataset}", file=sys.stderr)
        return EXIT_UNUSABLE
    if not args.knowledge_base.is_dir():
        print(f"error: no knowledge base folder at {args.knowledge_base}", file=sys.stderr)
        return EXIT_UNUSABLE
    dataset = load_dataset(args.dataset)
    for error in dataset.errors:
        print(f"  dataset {_shown(args.dataset)} {error}: skipped", file=sys.stderr)
    if not dataset.cases:
        print("error: no valid case in the dataset", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        prices = load_prices(args.prices)
        baseline = load_baseline(args.baseline)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    oracle = AccessOracle.from_knowledge_base(
        args.knowledge_base, max_bytes=RetrieverSettings().ingest.max_document_bytes
    )

    started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    started = time.monotonic()
    use_docker = None if args.docker == "auto" else args.docker == "yes"
    try:
        with throwaway_stack(use_docker=use_docker, knowledge_base=args.knowledge_base) as stack:
            print(f"\n  asking     {len(dataset.cases)} cases, {args.concurrency} at a time")
            observations = asyncio.run(
                _observe_all(stack.stack, dataset.cases, args.concurrency, args.case_timeout)
            )
    except Exception as exc:  # the stack did not come up, or the broker went away
        print(f"error: the eval could not run: {exc!r}", file=sys.stderr)
        return EXIT_UNUSABLE

    run = RunInfo(
        started_at=started_at,
        duration_s=round(time.monotonic() - started, 1),
        stack=stack.kind,
        stack_reason=stack.reason,
        dataset=_shown(args.dataset),
        knowledge_base=_shown(args.knowledge_base),
        documents=len(oracle),
        concurrency=args.concurrency,
        case_timeout_s=args.case_timeout,
        prices=prices.source,
    )
    report = evaluate(
        dataset.cases,
        observations,
        oracle=oracle,
        prices=prices,
        rules=GateRules(
            min_pass_rate=args.min_pass_rate,
            tolerance=args.tolerance,
            accept_drops=args.update_baseline,
        ),
        run=run,
        baseline=baseline,
        baseline_path=_shown(args.baseline),
        dataset_errors=[str(e) for e in dataset.errors],
        ingest_failures=stack.ingest_failures,
    )
    write_reports(report, dataset.cases, markdown=args.report_md, json_path=args.report_json)
    if args.update_baseline:
        fresh = make_baseline(
            recorded_at=started_at,
            dataset=report.run.dataset,
            knowledge_base=report.run.knowledge_base,
            stack=report.run.stack,
            overall=report.overall,
            kinds=report.kinds,
            verdicts=report.cases,
        )
        args.baseline.write_text(fresh.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _print_summary(report, args)
    return EXIT_PASSED if report.gate.passed else EXIT_FAILED


async def _observe_all(
    stack: LocalStack, cases: Sequence[Case], concurrency: int, timeout_s: float
) -> list[Observation]:
    record = SagaRecord(stack.bootstrap, topic_prefix=stack.config.topic_prefix)
    await record.start()
    try:
        asker = Asker(
            stack.url("gateway"),
            TokenService(AuthSettings()),
            concurrency=concurrency,
            timeout_s=timeout_s,
        )
        started = time.monotonic()
        replies = await asker.ask_all(cases)
        print(f"  asked      in {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        drafted = [r for r in replies if r.status in _DRAFTED]
        missing = await record.wait_for(
            [r.request_id for r in drafted if r.request_id], timeout_s=_SETTLE_S
        )
        usage = await collect_usage(
            stack.sink_url, [r.trace_id for r in drafted if r.trace_id], timeout_s=_SETTLE_S
        )
        print(
            f"  saga messages and traces read in {time.monotonic() - started:.1f}s"
            f" ({len(missing)} requests without both messages,"
            f" {len(drafted) - len(usage)} without a trace)"
        )
        return [_observation(r, record, usage) for r in replies]
    finally:
        await record.stop()


def _observation(
    reply: Reply, record: SagaRecord, usage: dict[str, tuple[ModelUsage, ...]]
) -> Observation:
    request_id = reply.request_id or ""
    return observe(
        reply,
        record.retrieved(request_id),
        record.draft(request_id),
        usage.get(reply.trace_id or ""),
    )


def _print_summary(report: EvalReport, args: argparse.Namespace) -> None:
    print(f"\n{report.overall.cases} cases from {report.run.dataset} ({report.run.stack})")
    print(f"  {'kind':<18} {'cases':>5} {'pass rate':>9} {'leaks':>5}")
    for kind, s in [*report.kinds.items(), ("all", report.overall)]:
        rate = "-" if s.pass_rate is None else f"{s.pass_rate:.3f}"
        print(f"  {kind:<18} {s.cases:>5} {rate:>9} {s.permission_leaks:>5}")
    if report.baseline is not None and report.baseline.applicable:
        print(
            f"  against the baseline: {len(report.baseline.newly_failing)} newly failing,"
            f" {len(report.baseline.newly_passing)} newly passing"
        )
    print(f"\ngate {'passed' if report.gate.passed else 'FAILED'}")
    for failure in report.gate.failures:
        print(f"  x {failure}")
    for passed in report.gate.passes:
        print(f"  ok {passed}")
    print(f"\nreport   {_shown(args.report_md)}, {_shown(args.report_json)}")
    if args.update_baseline:
        print(f"baseline {_shown(args.baseline)} written from this run")


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the repository when inside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(REPO))
    except ValueError:
        return str(resolved)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evals.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", type=Path, default=DATASET, help="JSON Lines, one case a line")
    parser.add_argument(
        "--knowledge-base", type=Path, default=KNOWLEDGE_BASE, help="folder of documents to ingest"
    )
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument(
        "--update-baseline",
        action="store_true",
        help="write this run's scores and verdicts as the new baseline (on purpose)",
    )
    parser.add_argument("--min-pass-rate", type=float, default=0.80)
    parser.add_argument(
        "--tolerance", type=float, default=0.03, help="largest accepted drop of a score"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="cases in flight at once")
    parser.add_argument(
        "--case-timeout", type=float, default=60.0, help="seconds before a case fails as timed out"
    )
    parser.add_argument(
        "--prices", type=Path, default=None, help='JSON {"model": {"input": usd, "output": usd}}'
    )
    parser.add_argument("--docker", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--report-md", type=Path, default=REPO / "eval-report.md")
    parser.add_argument("--report-json", type=Path, default=REPO / "eval-report.json")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
