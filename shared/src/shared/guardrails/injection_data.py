"""Training data of the injection detectors, read where it lies (never copied into the repo).

- :func:`load_prompt_sets` reads the public prompt sets by their shape: a JSONL of
  ``{"text", "label"}`` rows (deepset) or a CSV of ``prompt,type`` rows (jailbreak-classification);
  each row keeps the name of the set it came from, so thresholds and metrics are per set;
- :func:`near_duplicate_groups` clusters near-duplicates and translations, so no fold holds a
  paraphrase of a prompt it is tested on (the honest number for unseen templates);
- :func:`grouped_folds` deals whole groups to folds.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "LabelledPrompts",
    "grouped_folds",
    "load_jsonl",
    "load_prompt_set",
    "load_prompt_sets",
    "near_duplicate_groups",
    "source_groups",
]

Ints = npt.NDArray[np.int64]

# jailbreak-classification rows can exceed csv's default field limit (long role-play prompts).
csv.field_size_limit(10_000_000)


@dataclass
class LabelledPrompts:
    texts: list[str]
    labels: list[int]
    #: The file stem each row came from ("deepset-train", "jailbreak-train", "injection_augment").
    sources: list[str]

    def __add__(self, other: LabelledPrompts) -> LabelledPrompts:
        return LabelledPrompts(
            self.texts + other.texts, self.labels + other.labels, self.sources + other.sources
        )


def load_jsonl(path: Path) -> tuple[list[str], list[int]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [str(r["text"]) for r in rows], [int(r["label"]) for r in rows]


def load_prompt_set(path: Path) -> LabelledPrompts:
    """One labelled prompt file, by its extension: ``.jsonl`` (text/label) or ``.csv``
    (prompt/type, type ``jailbreak`` = 1)."""
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        texts = [r["prompt"] for r in rows]
        labels = [int(r["type"].strip().lower() == "jailbreak") for r in rows]
    else:
        texts, labels = load_jsonl(path)
    return LabelledPrompts(texts, labels, [path.stem] * len(texts))


def load_prompt_sets(paths: Sequence[Path]) -> LabelledPrompts:
    out = LabelledPrompts([], [], [])
    for path in paths:
        out = out + load_prompt_set(path)
    return out


def near_duplicate_groups(texts: Sequence[str], labels: Sequence[int]) -> Ints:
    """Union-find over near-duplicates: containment, 5-gram Jaccard >= 0.5, and parallel
    translation blocks (deepset's file holds its English rows again in German: row i and
    row i+L translate each other, detected by label equality and correlated lengths)."""
    n = len(texts)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    norm = [re.sub(r"\W+", " ", t.lower()).strip() for t in texts]
    grams = [frozenset(s[k : k + 5] for k in range(max(1, len(s) - 4))) for s in norm]
    sizes = np.array([len(g) for g in grams])
    for i in range(n):
        for j in range(i + 1, n):
            a, b = norm[i], norm[j]
            contained = (len(a) >= 15 and a in b) or (len(b) >= 15 and b in a)
            # Jaccard >= 0.5 needs the smaller set to be at least half the larger one.
            if not contained and min(sizes[i], sizes[j]) * 2 < max(sizes[i], sizes[j]):
                continue
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
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def grouped_folds(groups: Ints, y: Ints, k: int, seed: int) -> list[Ints]:
    """``k`` test-index arrays of whole groups, balancing each fold's positives and negatives."""
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
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


def source_groups(data: LabelledPrompts) -> Ints:
    """Near-duplicate groups computed within each source, numbered apart across sources."""
    groups = np.zeros(len(data.texts), dtype=np.int64)
    offset = 0
    for source in dict.fromkeys(data.sources):
        idx = [i for i, s in enumerate(data.sources) if s == source]
        local = near_duplicate_groups([data.texts[i] for i in idx], [data.labels[i] for i in idx])
        groups[idx] = local + offset
        offset += len(data.texts)
    return groups
