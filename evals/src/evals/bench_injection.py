"""The prompt-injection detector measured on every public prompt set at once.

One model is trained on the union of the sets (plus the self-written augmentation, always in
training, never in a test fold), as shipped. Two validations, both per set:

- **grouped CV**: folds of whole near-duplicate groups (paraphrases and translations of a
  test prompt are never in training); each fold picks its own threshold on its training split
  (out-of-fold FPR <= target on every set), and the held-out fold is scored by the run-time
  detector. Precision, recall, FPR per set, mean ± sd over repeats;
- **leave one set out**: train on the other sets only, test on the left-out one, at the
  threshold chosen without it. The stress test for a differently distributed held-out set.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shared.guardrails.injection import DEFAULT_MODEL, InjectionDetector
from shared.guardrails.injection_data import (
    LabelledPrompts,
    grouped_folds,
    load_prompt_set,
    load_prompt_sets,
    source_groups,
)
from shared.guardrails.injection_train import AUGMENT, FeatureCache, load_jsonl, train_model

__all__ = ["bench_injection", "train_injection"]

Bools = npt.NDArray[np.bool_]

#: Per-set false-positive budgets for the threshold, with margin under the targets (deepset
#: 0.05, jailbreak-style benign 0.10); sets not named use ``--target-fpr``.
BUDGETS = {"jailbreak-train": 0.06}
MIN_DF = 3


def _augment() -> tuple[list[str], list[int]]:
    return load_jsonl(AUGMENT)


def _rates(predicted: Bools, y: npt.NDArray[np.int64]) -> dict[str, float]:
    tp = int((predicted & (y == 1)).sum())
    positives, negatives = int((y == 1).sum()), int((y == 0).sum())
    return {
        "precision": tp / max(int(predicted.sum()), 1),
        "recall": tp / positives if positives else float("nan"),
        "fpr": float(predicted[y == 0].mean()) if negatives else float("nan"),
    }


def _train(
    data: LabelledPrompts,
    idx: Sequence[int],
    groups: npt.NDArray[np.int64],
    target_fpr: float,
    cache: FeatureCache,
    seed: int,
) -> InjectionDetector:
    extra_texts, extra_labels = _augment()
    model = train_model(
        [data.texts[i] for i in idx],
        [data.labels[i] for i in idx],
        extra_texts=extra_texts,
        extra_labels=extra_labels,
        sources=[data.sources[i] for i in idx],
        groups=[int(groups[i]) for i in idx],
        target_fpr=target_fpr,
        target_fpr_by_source=BUDGETS,
        min_df=MIN_DF,
        cache=cache,
        seed=seed,
    )
    return InjectionDetector(model)


def grouped_cv(
    data: LabelledPrompts, folds: int, repeats: int, target_fpr: float
) -> dict[str, dict[str, tuple[float, float]]]:
    y = np.asarray(data.labels, dtype=np.int64)
    src = np.asarray(data.sources)
    groups = source_groups(data)
    cache = FeatureCache(2, 5)
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in dict.fromkeys(data.sources)}
    for repeat in range(repeats):
        predicted = np.zeros(len(y), dtype=bool)
        for test in grouped_folds(groups, y, folds, seed=repeat):
            train = np.setdiff1d(np.arange(len(y)), test)
            detector = _train(data, train.tolist(), groups, target_fpr, cache, repeat)
            predicted[test] = [detector.score(data.texts[i], top_k=0).is_injection for i in test]
        for name in runs:
            mask = src == name
            runs[name].append(_rates(predicted[mask], y[mask]))
    return {
        name: {
            k: (statistics.mean(r[k] for r in rs), statistics.pstdev([r[k] for r in rs]))
            for k in rs[0]
        }
        for name, rs in runs.items()
    }


def leave_one_set_out(data: LabelledPrompts, target_fpr: float) -> dict[str, dict[str, float]]:
    y = np.asarray(data.labels, dtype=np.int64)
    src = np.asarray(data.sources)
    groups = source_groups(data)
    cache = FeatureCache(2, 5)
    out = {}
    for name in dict.fromkeys(data.sources):
        test = np.flatnonzero(src == name)
        train = np.flatnonzero(src != name)
        detector = _train(data, train.tolist(), groups, target_fpr, cache, 0)
        predicted = np.array([detector.score(data.texts[i], top_k=0).is_injection for i in test])
        out[name] = _rates(predicted, y[test])
    return out


def _targets(name: str, r: dict[str, float]) -> str:
    if "deepset" in name:
        return "recall >= 0.85 at FPR <= 0.05: " + (
            "met" if r["recall"] >= 0.85 and r["fpr"] <= 0.05 else "MISSED"
        )
    if "jailbreak" in name:
        return "FPR <= 0.10 at recall >= 0.85: " + (
            "met" if r["fpr"] <= 0.10 and r["recall"] >= 0.85 else "MISSED"
        )
    return ""


def bench_injection(paths: Sequence[Path], folds: int, repeats: int, target_fpr: float) -> None:
    data = load_prompt_sets(paths)
    sizes = ", ".join(
        f"{p.stem} n={len(d.texts)} ({sum(d.labels)} attacks)"
        for p, d in ((p, load_prompt_set(p)) for p in paths)
    )
    print(f"\n## Prompt injection: one model over {sizes}")
    print(
        f"threshold chosen inside each training split: out-of-fold FPR <= {target_fpr} on every"
        f" set ({BUDGETS} overrides); augmentation {AUGMENT.name} in training only\n"
    )
    started = time.perf_counter()
    cv = grouped_cv(data, folds, repeats, target_fpr)
    print(f"grouped {folds}-fold CV x {repeats} ({time.perf_counter() - started:.0f} s)\n")
    print("| set | precision | recall | FPR | target |")
    print("|---|---|---|---|---|")
    for name, r in cv.items():
        means = {k: v[0] for k, v in r.items()}
        print(
            f"| {name} | {r['precision'][0]:.3f} ± {r['precision'][1]:.3f} |"
            f" {r['recall'][0]:.3f} ± {r['recall'][1]:.3f} | {r['fpr'][0]:.3f} ± {r['fpr'][1]:.3f}"
            f" | {_targets(name, means)} |"
        )
    if len(paths) > 1:
        print("\nleave one set out (trained on the others, tested on this one):\n")
        print("| held-out set | precision | recall | FPR |")
        print("|---|---|---|---|")
        for name, m in leave_one_set_out(data, target_fpr).items():
            print(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['fpr']:.3f} |")
    detector = InjectionDetector.load()
    timings = []
    for text in data.texts:
        t0 = time.perf_counter()
        detector.score(text)
        timings.append(time.perf_counter() - t0)
    timings.sort()
    print(
        f"\nshipped model ({DEFAULT_MODEL.name}, threshold {detector.threshold:.4f}):"
        f" {statistics.median(timings) * 1e3:.2f} ms p50,"
        f" {timings[int(0.95 * len(timings))] * 1e3:.2f} ms p95 per prompt"
    )


def train_injection(paths: Sequence[Path], out: Path, target_fpr: float) -> None:
    """Retrain the shipped model file from ``paths`` (the command is in docs/performance.md)."""
    data = load_prompt_sets(paths)
    extra_texts, extra_labels = _augment()
    started = time.perf_counter()
    model = train_model(
        data.texts,
        data.labels,
        extra_texts=extra_texts,
        extra_labels=extra_labels,
        sources=data.sources,
        groups=source_groups(data).tolist(),
        target_fpr=target_fpr,
        target_fpr_by_source=BUDGETS,
        min_df=MIN_DF,
        threshold_repeats=3,
        provenance={
            "data": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths},
            "augment_sha256": hashlib.sha256(AUGMENT.read_bytes()).hexdigest(),
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(
        f"{out}: {out.stat().st_size / 1024:.0f} KiB, vocabulary {len(model['vocab'])},"
        f" threshold {model['threshold']:.4f} {model['threshold_per_source']}"
        f" ({time.perf_counter() - started:.0f} s)"
    )
