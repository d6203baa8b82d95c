"""The document screen (indirect injection) trained and measured on BIPIA-built documents.

Documents, built where the data lies (nothing copied into the repo):

- **e-mails**: BIPIA's clean e-mails, and each with an attack instruction inserted at the
  start, the middle or the end;
- **tables**: each e-mail as a Markdown table (field | value, the content one row per
  sentence), and with the attack as an extra row or appended to a cell;
- **knowledge-base text** (clean only): PolicyQA paragraphs and SciFact abstracts, for the
  false-positive rate on what the platform really indexes.

Every document is cut into sentences exactly as the retriever's ingest does
(``retriever.ingest.sentences_of``, tables read row by row) and embedded with the retriever's
MiniLM, whose sentence vectors the screen reuses in production.

Validation: 5 folds; a fold holds a fifth of the e-mails *and* a fifth of the attack
categories (3 of 15), so every test attack is of a family never trained on, planted in an
e-mail never trained on. Segment models are refitted per fold; the threshold applied to a fold
is chosen on the other folds' out-of-fold scores (FPR <= target on every document kind).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.guardrails.documents import (
    DEFAULT_DOCUMENT_MODEL,
    DOCUMENT_FORMAT,
    DocumentScreen,
    out_of_place,
)
from shared.guardrails.injection import InjectionDetector
from shared.guardrails.injection_data import load_prompt_sets
from shared.guardrails.injection_train import FeatureCache, train_model

__all__ = ["bench_documents", "build_documents", "train_documents"]

FOLDS = 5
#: Weight of out-of-place-ness, in logit units; chosen once on these training folds
#: (grid 0, 2, 4, 8, 16: 4 gave the best recall at equal FPR) and fixed since.
ALPHA = 4.0
#: Long jailbreak prompts are truncated as positives: a planted instruction is a sentence.
_MAX_POSITIVE_CHARS = 500


@dataclass(frozen=True)
class Doc:
    text: str
    label: int
    kind: str
    fold: int


def _email_table(email: str) -> list[tuple[str, str]]:
    from retriever.ingest import sentences_of

    rows: list[tuple[str, str]] = []
    for part in (p for p in email.split("|") if p.strip()):
        key, _, value = part.partition(":")
        if key.strip().isupper() and value.strip() and key.strip() != "CONTENT":
            rows.append((key.strip().lower(), value.strip()))
        else:
            body = value if key.strip() == "CONTENT" else part
            rows.extend(("content", s) for s in sentences_of(body)[:8])
    return rows


def _render(rows: Sequence[tuple[str, str]]) -> str:
    cells = [(k, v.replace("|", "/").replace("\n", " ")) for k, v in rows]
    return "\n".join(["| field | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in cells)])


def _plant_in_email(email: str, attack: str, where: str) -> str:
    if where == "start":
        return f"{attack} {email}"
    if where == "end":
        return f"{email} {attack}"
    middle = len(email) // 2
    cut = email.find(". ", middle)
    cut = middle if cut < 0 else cut + 2
    return f"{email[:cut]}{attack} {email[cut:]}"


def _plant_in_table(
    rows: list[tuple[str, str]], attack: str, where: str, rng: random.Random
) -> list[tuple[str, str]]:
    rows = list(rows)
    at = {"start": 0, "middle": len(rows) // 2, "end": len(rows)}[where]
    if rng.random() < 0.5 or not rows:
        rows.insert(at, ("note", attack))
    else:
        at = min(at, len(rows) - 1)
        rows[at] = (rows[at][0], f"{rows[at][1]} {attack}")
    return rows


def _kb_texts(path: Path, limit: int) -> list[str]:
    if path.suffix == ".jsonl":  # BEIR corpus
        lines = path.read_text(encoding="utf-8").splitlines()[:limit]
        return [str(json.loads(line)["text"]) for line in lines if line]
    data = json.loads(path.read_text(encoding="utf-8"))  # SQuAD format
    return [p["context"] for d in data["data"] for p in d["paragraphs"]][:limit]


def build_documents(
    bipia: Path, kb: Sequence[Path], *, kb_limit: int = 600, seed: int = 0
) -> tuple[list[Doc], list[tuple[str, str]], dict[str, int]]:
    """Documents, the (category, attack) list and each category's fold."""
    rng = random.Random(seed)
    emails = [
        str(json.loads(line)["context"])
        for line in (bipia / "email-train.jsonl").read_text(encoding="utf-8").splitlines()
        if line
    ]
    raw = json.loads((bipia / "text-attack-train.json").read_text(encoding="utf-8"))
    attacks = [(cat, str(a)) for cat, items in raw.items() for a in items]
    categories = sorted(raw)
    rng.shuffle(categories)
    cat_fold = {c: i % FOLDS for i, c in enumerate(categories)}
    email_fold = [i % FOLDS for i in range(len(emails))]
    rng.shuffle(email_fold)
    docs: list[Doc] = []
    for email, fold in zip(emails, email_fold, strict=True):
        rows = _email_table(email)
        docs += [Doc(email, 0, "email", fold), Doc(_render(rows), 0, "table", fold)]
        for cat, attack in attacks:
            if cat_fold[cat] != fold:
                continue
            for where in ("start", "middle", "end"):
                docs.append(Doc(_plant_in_email(email, attack, where), 1, "email", fold))
                planted = _plant_in_table(rows, attack, where, rng)
                docs.append(Doc(_render(planted), 1, "table", fold))
    for path in kb:
        kind = "scifact" if path.suffix == ".jsonl" else "policyqa"
        docs += [Doc(t, 0, kind, i % FOLDS) for i, t in enumerate(_kb_texts(path, kb_limit))]
    return docs, attacks, cat_fold


class _Segments:
    """Sentences of every document (as ingest cuts them) and their MiniLM vectors, once."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        from retriever.embedding.onnx_minilm import OnnxMiniLM
        from retriever.ingest import sentences_of

        self.of = [sentences_of(d.text) for d in docs]
        unique = sorted({s for ss in self.of for s in ss})
        self.embedder = OnnxMiniLM()
        vectors = self.embedder.embed(unique)
        self.vector = {s: vectors[i] for i, s in enumerate(unique)}

    def vectors(self, i: int) -> npt.NDArray[np.float32]:
        return np.vstack([self.vector[s] for s in self.of[i]])


def _segment_model(
    positives: Sequence[str], negatives: Sequence[str], cache: FeatureCache
) -> dict[str, Any]:
    texts = [p[:_MAX_POSITIVE_CHARS] for p in positives] + list(negatives)
    labels = [1] * len(positives) + [0] * len(negatives)
    # The segment model's own threshold is unused (the document threshold is chosen on
    # document scores): one threshold fold pass is enough.
    return train_model(texts, labels, cache=cache, threshold_folds=2, c=1.0)


def _doc_scores(
    model: dict[str, Any], idx: Sequence[int], seg: _Segments
) -> dict[int, tuple[float, float]]:
    """Per document: (max logit, max logit + ALPHA * out-of-place)."""
    screen = DocumentScreen(
        {
            "format": DOCUMENT_FORMAT,
            "segment_model": model,
            "alpha": ALPHA,
            "threshold": 0.0,
            "threshold_text_only": 0.0,
            "embedder": seg.embedder.model_name.split("@")[0],
        }
    )
    out = {}
    for i in idx:
        z = np.asarray(screen.logits(seg.of[i]), dtype=np.float64)
        both = z + ALPHA * out_of_place(seg.vectors(i))
        out[i] = (float(z.max()), float(both.max()))
    return out


def _threshold(
    scores: npt.NDArray[np.float64], docs: Sequence[Doc], idx: Sequence[int], target_fpr: float
) -> float:
    """Lowest threshold with FPR <= target on each document kind's clean documents."""
    worst = -np.inf
    for kind in {docs[i].kind for i in idx}:
        neg = np.sort(
            [scores[j] for j, i in enumerate(idx) if docs[i].kind == kind and docs[i].label == 0]
        )[::-1]
        if len(neg):
            k = int(target_fpr * len(neg))
            worst = max(worst, float(np.nextafter(neg[min(k, len(neg) - 1)], np.inf)))
    return float(worst)


def _prompts(paths: Sequence[Path], attacks: Sequence[tuple[str, str]]) -> list[str]:
    return load_prompt_sets(paths).texts + [a for _, a in attacks]


def cross_validate(
    docs: list[Doc],
    attacks: list[tuple[str, str]],
    cat_fold: dict[str, int],
    prompt_paths: Sequence[Path],
    seg: _Segments,
) -> dict[int, tuple[float, float]]:
    public = load_prompt_sets(prompt_paths).texts
    cache = FeatureCache(2, 5)
    oof: dict[int, tuple[float, float]] = {}
    for fold in range(FOLDS):
        positives = public + [a for c, a in attacks if cat_fold[c] != fold]
        negatives = sorted(
            {
                s
                for d, ss in zip(docs, seg.of, strict=True)
                if d.label == 0 and d.fold != fold
                for s in ss
            }
        )
        model = _segment_model(positives, negatives, cache)
        oof |= _doc_scores(model, [i for i, d in enumerate(docs) if d.fold == fold], seg)
    return oof


def bench_documents(
    bipia: Path, kb: Sequence[Path], prompt_paths: Sequence[Path], target_fpr: float
) -> None:
    started = time.perf_counter()
    docs, attacks, cat_fold = build_documents(bipia, kb)
    seg = _Segments(docs)
    oof = cross_validate(docs, attacks, cat_fold, prompt_paths, seg)
    print(f"\n## Indirect injection: documents built from {bipia.name}/ ({len(docs)} documents)")
    print(
        f"{FOLDS} folds, each unseen e-mails x unseen attack categories; threshold from the"
        f" other folds' scores, FPR <= {target_fpr} on every kind"
        f" ({time.perf_counter() - started:.0f} s)\n"
    )
    print("| screen | kind | documents (attacked / clean) | recall | FPR |")
    print("|---|---|---|---|---|")
    for column, name in ((1, "sentences + out-of-place"), (0, "sentences only")):
        flagged: dict[int, bool] = {}
        for fold in range(FOLDS):
            test = [i for i, d in enumerate(docs) if d.fold == fold]
            rest = [i for i, d in enumerate(docs) if d.fold != fold]
            t = _threshold(np.array([oof[i][column] for i in rest]), docs, rest, target_fpr)
            flagged |= {i: oof[i][column] >= t for i in test}
        for kind in dict.fromkeys(d.kind for d in docs):
            pos = [flagged[i] for i, d in enumerate(docs) if d.kind == kind and d.label == 1]
            neg = [flagged[i] for i, d in enumerate(docs) if d.kind == kind and d.label == 0]
            recall = f"{statistics.mean(pos):.3f}" if pos else "n/a"
            print(
                f"| {name} | {kind} | {len(pos)} / {len(neg)} | {recall} |"
                f" {statistics.mean(neg):.3f} |"
            )
    _latency(docs, seg)


def _latency(docs: Sequence[Doc], seg: _Segments) -> None:
    screen = DocumentScreen.load()
    name = seg.embedder.model_name
    timings = []
    for i in range(0, len(docs), max(1, len(docs) // 400)):
        t0 = time.perf_counter()
        screen.screen(seg.of[i], seg.vectors(i), embedder_name=name)
        timings.append(time.perf_counter() - t0)
    timings.sort()
    print(
        f"\nshipped screen ({DEFAULT_DOCUMENT_MODEL.name}): {statistics.median(timings) * 1e3:.2f}"
        f" ms p50, {timings[int(0.95 * len(timings))] * 1e3:.2f} ms p95 per document"
        " (sentence vectors given, as at ingest)"
    )


def train_documents(
    bipia: Path, kb: Sequence[Path], prompt_paths: Sequence[Path], out: Path, target_fpr: float
) -> None:
    """Fit the shipped document screen on every document; thresholds from the CV scores."""
    started = time.perf_counter()
    docs, attacks, cat_fold = build_documents(bipia, kb)
    seg = _Segments(docs)
    oof = cross_validate(docs, attacks, cat_fold, prompt_paths, seg)
    idx = list(range(len(docs)))
    thresholds = [
        _threshold(np.array([oof[i][c] for i in idx]), docs, idx, target_fpr) for c in (1, 0)
    ]
    negatives = sorted({s for d, ss in zip(docs, seg.of, strict=True) if d.label == 0 for s in ss})
    model = _segment_model(_prompts(prompt_paths, attacks), negatives, FeatureCache(2, 5))
    InjectionDetector(model)  # refuse to write a file the run time cannot load
    document_model = {
        "format": DOCUMENT_FORMAT,
        "version": "v1",
        "alpha": ALPHA,
        "threshold": float(f"{thresholds[0]:.6g}"),
        "threshold_text_only": float(f"{thresholds[1]:.6g}"),
        "target_fpr": target_fpr,
        "embedder": seg.embedder.model_name.split("@")[0],
        "segment_model": model,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document_model, separators=(",", ":")), encoding="utf-8")
    print(
        f"{out}: {out.stat().st_size / 1024:.0f} KiB, thresholds {thresholds[0]:.3f} (with"
        f" vectors) / {thresholds[1]:.3f} (text only) ({time.perf_counter() - started:.0f} s)"
    )
