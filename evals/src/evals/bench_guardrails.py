"""``make bench-guardrails``: every guardrail measured on public data, read where it lies.

- ``--prompts`` (repeatable; deepset JSONL, jailbreak CSV): the input injection detector, one
  model over all sets, grouped CV and leave-one-set-out, per set (``evals.bench_injection``);
- ``--bipia DIR`` with ``--kb`` clean knowledge-base files: the document screen for indirect
  injection on e-mails and tables (``evals.bench_documents``);
- ``--pii FILE`` (Presidio-style ``{"full_text", "spans"}``): the redactor's recall and
  precision per entity type and its latency per text.

``--train`` rewrites the shipped model files from the same data instead (the commands are in
docs/performance.md). Nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from shared.guardrails import OUTPUT_ENTITIES, OutputRedactor
from shared.guardrails.documents import DEFAULT_DOCUMENT_MODEL
from shared.guardrails.injection import DEFAULT_MODEL

from .bench_documents import bench_documents, train_documents
from .bench_injection import bench_injection, train_injection

PII_TARGETS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")


# ----------------------------------------------------------------------------- PII
def bench_pii(path: Path) -> None:
    docs = json.loads(path.read_text(encoding="utf-8"))
    redactor = OutputRedactor()
    redactor.warmup()
    gold: Counter[str] = Counter()
    found: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    timings = []
    for doc in docs:
        text = doc["full_text"]
        started = time.perf_counter()
        spans = redactor.find(text)
        timings.append(time.perf_counter() - started)
        truth = [(g["entity_type"], g["start_position"], g["end_position"]) for g in doc["spans"]]
        for kind, start, end in truth:
            gold[kind] += 1
            found[kind] += any(s.type == kind and s.start < end and start < s.end for s in spans)
        for s in spans:
            predicted[s.type] += 1
            correct[s.type] += any(k == s.type and s.start < e and b < s.end for k, b, e in truth)
    print(f"\n## PII and secrets: {path.name} ({len(docs)} texts)\n")
    print("| entity type | gold | recall | predicted | precision | target |")
    print("|---|---|---|---|---|---|")
    for kind in sorted(gold | predicted, key=lambda k: (k not in PII_TARGETS, -gold[k], k)):
        recall = found[kind] / gold[kind] if gold[kind] else float("nan")
        precision = correct[kind] / predicted[kind] if predicted[kind] else float("nan")
        target = ""
        if kind in PII_TARGETS:
            target = "recall >= 0.90 " + ("met" if recall >= 0.90 else "MISSED")
        elif kind not in OUTPUT_ENTITIES:
            target = "not redacted"
        print(
            f"| {kind} | {gold[kind]} | {recall:.3f} | {predicted[kind]} | {precision:.3f} |"
            f" {target} |"
        )
    timings.sort()
    print(
        f"\nredactor latency: {statistics.median(timings) * 1e6:.0f} µs median,"
        f" {timings[int(0.95 * len(timings))] * 1e6:.0f} µs p95 per text"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=Path, action="append", default=[])
    parser.add_argument("--bipia", type=Path)
    parser.add_argument("--kb", type=Path, action="append", default=[])
    parser.add_argument("--pii", type=Path)
    parser.add_argument("--train", action="store_true", help="rewrite the shipped model files")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target-fpr", type=float, default=0.03)
    parser.add_argument("--doc-target-fpr", type=float, default=0.05)
    args = parser.parse_args(argv)
    if args.train:
        if args.prompts:
            train_injection(args.prompts, DEFAULT_MODEL, args.target_fpr)
        if args.bipia:
            train_documents(
                args.bipia, args.kb, args.prompts, DEFAULT_DOCUMENT_MODEL, args.doc_target_fpr
            )
        return
    if args.prompts:
        bench_injection(args.prompts, args.folds, args.repeats, args.target_fpr)
    if args.bipia:
        bench_documents(args.bipia, args.kb, args.prompts, args.doc_target_fpr)
    if args.pii:
        bench_pii(args.pii)


if __name__ == "__main__":
    main()
