"""``make bench-guardrails``: the input and output guardrails measured on public data.

Each ``--data`` file is benchmarked by its shape:

- a JSONL of ``{"text", "label"}`` rows (e.g. ``deepset-train.jsonl``): the prompt-injection
  detector, cross-validated. Every fold trains exactly what ships (``train_model``, with the
  self-written augmentation always in training, never in a test fold) and chooses its
  threshold on its own training split; predictions on the held-out fold go through the run-time
  detector. Two schemes: stratified folds, and group-aware folds in which near-duplicates and
  translations of a test prompt are never in training (the honest number for unseen attack
  templates). Also the shipped model's latency per prompt;
- a JSON list of Presidio-style ``{"full_text", "spans"}`` records (e.g.
  ``presidio-synth-dev.json``): the PII/secrets redactor's recall and precision per entity type
  (a gold span counts as found when a predicted span of the same type overlaps it) and its
  latency per text.

``--train --data deepset-train.jsonl`` retrains the shipped model file instead. Data is read
where it lies; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.guardrails import OUTPUT_ENTITIES, OutputRedactor
from shared.guardrails.injection import DEFAULT_MODEL, InjectionDetector
from shared.guardrails.injection_train import (
    AUGMENT,
    FeatureCache,
    load_jsonl,
    stratified_folds,
    train_model,
)

PII_TARGETS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")


# ----------------------------------------------------------------------------- injection
def near_duplicate_groups(texts: Sequence[str], labels: Sequence[int]) -> np.ndarray:
    """Union-find over near-duplicates: containment, 5-gram Jaccard >= 0.5, and the
    EN/DE parallel blocks of the deepset file (row i and row i+L translate each other)."""
    n = len(texts)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    norm = [re.sub(r"\W+", " ", t.lower()).strip() for t in texts]
    grams = [{s[k : k + 5] for k in range(max(1, len(s) - 4))} for s in norm]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = norm[i], norm[j]
            contained = (len(a) >= 15 and a in b) or (len(b) >= 15 and b in a)
            if contained or len(grams[i] & grams[j]) / max(len(grams[i] | grams[j]), 1) >= 0.5:
                parent[find(i)] = find(j)
    lengths = np.log1p(np.array([len(t) for t in texts], dtype=float))
    block = 0
    for size in range(50, n // 2 + 1):
        same = all(labels[i] == labels[i + size] for i in range(size))
        if same and np.corrcoef(lengths[:size], lengths[size : 2 * size])[0, 1] > 0.9:
            block = size
    for i in range(block):
        parent[find(i)] = find(i + block)
    return np.array([find(i) for i in range(n)])


def grouped_folds(groups: np.ndarray, y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Whole groups per fold, balancing each fold's positives and negatives."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.unique(groups))
    load = np.zeros((k, 2))
    folds: list[list[int]] = [[] for _ in range(k)]
    for g in ids:
        members = np.flatnonzero(groups == g)
        label = int(y[members].mean() >= 0.5)
        target = int(np.argmin(load[:, label] + 0.01 * load.sum(axis=1)))
        folds[target].extend(members.tolist())
        load[target, label] += len(members)
    return [np.sort(np.asarray(f)) for f in folds]


def cross_validate(
    texts: list[str], labels: list[int], scheme: str, folds: int, repeats: int, target_fpr: float
) -> dict[str, float]:
    extra_texts, extra_labels = load_jsonl(AUGMENT)
    y = np.asarray(labels)
    groups = near_duplicate_groups(texts, labels) if scheme == "grouped" else None
    cache = FeatureCache(2, 5)
    runs = []
    worst_fpr = 0.0
    for repeat in range(repeats):
        predicted = np.zeros(len(texts), dtype=bool)
        splits = (
            grouped_folds(groups, y, folds, seed=repeat)
            if groups is not None
            else stratified_folds(y, folds, seed=repeat)
        )
        for test in splits:
            train = np.setdiff1d(np.arange(len(texts)), test)
            model = train_model(
                [texts[i] for i in train],
                [labels[i] for i in train],
                extra_texts=extra_texts,
                extra_labels=extra_labels,
                target_fpr=target_fpr,
                cache=cache,
                seed=repeat,
            )
            detector = InjectionDetector(model)
            predicted[test] = [detector.score(texts[i], top_k=0).is_injection for i in test]
            negatives = test[y[test] == 0]
            if len(negatives):
                worst_fpr = max(worst_fpr, float(predicted[negatives].mean()))
        tp = int((predicted & (y == 1)).sum())
        runs.append(
            {
                "precision": tp / max(int(predicted.sum()), 1),
                "recall": tp / int((y == 1).sum()),
                "fpr": float(predicted[y == 0].mean()),
            }
        )
    out = {f"{k}_mean": statistics.mean(r[k] for r in runs) for k in runs[0]}
    out |= {f"{k}_sd": statistics.pstdev([r[k] for r in runs]) for k in runs[0]}
    out["worst_fold_fpr"] = worst_fpr
    return out


def bench_injection(path: Path, folds: int, repeats: int, target_fpr: float) -> None:
    texts, labels = load_jsonl(path)
    print(f"\n## Prompt injection: {path.name} (n={len(texts)}, injections={sum(labels)})")
    print(
        f"{folds}-fold CV x {repeats} repeats; threshold chosen inside each training split for"
        f" out-of-fold FPR <= {target_fpr}; augmentation {AUGMENT.name} in training only\n"
    )
    print("| scheme | precision | recall | FPR | worst fold FPR | recall >= 0.80 at FPR <= 0.05 |")
    print("|---|---|---|---|---|---|")
    for scheme in ("stratified", "grouped"):
        started = time.perf_counter()
        r = cross_validate(texts, labels, scheme, folds, repeats, target_fpr)
        met = r["recall_mean"] >= 0.80 and r["fpr_mean"] <= 0.05
        print(
            f"| {scheme} | {r['precision_mean']:.3f} ± {r['precision_sd']:.3f} |"
            f" {r['recall_mean']:.3f} ± {r['recall_sd']:.3f} |"
            f" {r['fpr_mean']:.3f} ± {r['fpr_sd']:.3f}"
            f" | {r['worst_fold_fpr']:.3f} | {'yes' if met else 'NO'} |"
            f"  ({time.perf_counter() - started:.0f} s)"
        )
    detector = InjectionDetector.load()
    timings = []
    for text in texts:
        started = time.perf_counter()
        detector.score(text)
        timings.append(time.perf_counter() - started)
    timings.sort()
    print(
        f"\nshipped model ({DEFAULT_MODEL.name}, threshold {detector.threshold:.4f}):"
        f" {statistics.median(timings) * 1e3:.2f} ms median,"
        f" {timings[int(0.95 * len(timings))] * 1e3:.2f} ms p95 per prompt"
    )


def train(path: Path, out: Path, target_fpr: float) -> None:
    texts, labels = load_jsonl(path)
    extra_texts, extra_labels = load_jsonl(AUGMENT)
    started = time.perf_counter()
    model = train_model(
        texts,
        labels,
        extra_texts=extra_texts,
        extra_labels=extra_labels,
        target_fpr=target_fpr,
        threshold_repeats=3,
        provenance={
            "data": path.name,
            "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "augment_sha256": hashlib.sha256(AUGMENT.read_bytes()).hexdigest(),
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(
        f"{out}: {out.stat().st_size / 1024:.0f} KiB, vocabulary {len(model['vocab'])},"
        f" threshold {model['threshold']:.4f} ({time.perf_counter() - started:.0f} s)"
    )


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
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--train", action="store_true", help="retrain the shipped model")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target-fpr", type=float, default=0.03)
    args = parser.parse_args(argv)
    for path in args.data:
        if args.train:
            train(path, args.out, args.target_fpr)
        elif path.suffix == ".jsonl":
            bench_injection(path, args.folds, args.repeats, args.target_fpr)
        else:
            bench_pii(path)


if __name__ == "__main__":
    main()
