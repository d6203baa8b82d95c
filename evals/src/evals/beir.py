"""Reading a BEIR dataset folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BeirDataset", "load_beir"]


@dataclass(frozen=True)
class BeirDataset:
    #: doc id → (title, text)
    corpus: dict[str, tuple[str, str]]
    #: query id → text, for the queries judged in the split only
    queries: dict[str, str]
    #: query id → {doc id: relevance}
    qrels: dict[str, dict[str, int]]


def load_beir(folder: Path, split: str) -> BeirDataset:
    corpus: dict[str, tuple[str, str]] = {}
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with (folder / "qrels" / f"{split}.tsv").open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader)  # header: query-id, corpus-id, score
        for query_id, doc_id, score in reader:
            if int(score) > 0:
                qrels[query_id][doc_id] = int(score)
    queries: dict[str, str] = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                queries[str(row["_id"])] = row["text"]
    return BeirDataset(corpus, queries, {q: qrels[q] for q in queries})
