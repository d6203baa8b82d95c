"""``make bench-kb DATA=../shared/data/policyqa/dev.json``: retrieval and answers on a knowledge
base nobody tuned for, through the product's own ingestion, retrieval and offline reader.

Each privacy policy is one plain-text document in a tenant of its own; each question is asked
by a customer of that tenant (so only that policy can be found), through the retriever's read
path (query hygiene, hybrid search, rerank; the cache off) and answered by the agent's offline
model from the ``top_k`` chunks the agent would receive. Printed:

- **Recall@1/5/10** of the gold paragraph: it is covered by one of the first k chunks
  (``policyqa.covered_paragraphs``); ``same-q`` also counts the paragraphs annotated with the
  same question text in that policy;
- **answer token F1 / EM** against the gold spans (SQuAD normalisation), over every question and
  over those whose gold paragraph is among the agent's chunks, beside the best single sentence
  of the gold paragraph (what a perfect one-sentence reader would score);
- **cites gold**: the answer cites a chunk covering the gold paragraph; **refused**: no answer;
- **latency** p50 / p95 of retrieval and of the reader, per question (quote ratios: the
  machine is shared).

``--set block.field=value`` overrides a retriever setting (``--set chunking.max_chars=800``) to
compare variants; ``--limit N`` takes every k-th question for a quick look (quote full runs).
Vectors are cached on disk (the product's embedding cache), so a rerun embeds nothing new.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agent.models import ExtractiveModel
from agent.text import split_sentences
from retriever.engine import build_engine
from retriever.handlers import _to_contract
from retriever.settings import CacheSettings, IndexSettings, RetrieverSettings
from shared.contracts import RetrievedChunk
from shared.principal import Principal, StaffLevel

from .policyqa import (
    Policy,
    Question,
    covered_paragraphs,
    exact_match,
    load_policyqa,
    policy_document,
    token_f1,
)

KS = (1, 5, 10)
#: Questions no privacy policy answers, asked of every policy's tenant: the unanswerable side
#: of the refusal curve (written for this bench; not the lead's eval dataset).
UNANSWERABLE_PROBES = (
    "What is the weather forecast for this weekend?",
    "Who won the last football World Cup?",
    "Can you give me a recipe for chili con carne?",
    "How many days do I have to return a pair of shoes?",
    "What is your share price today?",
    "How do I reset the router in my apartment?",
    "Which tent is best for winter camping?",
    "How long does standard shipping to Norway take?",
    "What are the opening hours of your store in Berlin?",
    "How do I assemble the bookshelf I bought?",
    "Can I pay for my order in instalments?",
    "What is the capital of Australia?",
    "How much does the premium subscription cost per month?",
    "Who is the chief financial officer of the company?",
    "Is the blue jacket available in size XL?",
    "How do I fix a flat bicycle tyre?",
)
_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass
class Tally:
    n: int = 0
    recall: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    recall_same: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    recall_para: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    recall_para_same: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    in_context: int = 0
    f1: list[float] = field(default_factory=list)
    em: int = 0
    f1_in_context: list[float] = field(default_factory=list)
    oracle_f1: list[float] = field(default_factory=list)
    cites_gold: int = 0
    refused: int = 0
    retrieval_ms: list[float] = field(default_factory=list)
    reader_ms: list[float] = field(default_factory=list)
    rejected: int = 0

    def summary(self) -> dict[str, Any]:
        n = max(self.n, 1)
        p = np.percentile
        return {
            "questions": self.n,
            **{f"recall@{k}": self.recall[k] / n for k in KS},
            **{f"recall_same_q@{k}": self.recall_same[k] / n for k in KS},
            **{f"paragraph_recall@{k}": self.recall_para[k] / n for k in KS},
            **{f"paragraph_recall_same_q@{k}": self.recall_para_same[k] / n for k in KS},
            "gold_in_agent_chunks": self.in_context / n,
            "f1": float(np.mean(self.f1)) if self.f1 else 0.0,
            "em": self.em / n,
            "f1_gold_in_chunks": float(np.mean(self.f1_in_context)) if self.f1_in_context else 0.0,
            "oracle_sentence_f1": float(np.mean(self.oracle_f1)) if self.oracle_f1 else 0.0,
            "cites_gold": self.cites_gold / n,
            "refused": self.refused / n,
            "rejected_queries": self.rejected,
            "retrieval_p50_ms": float(p(self.retrieval_ms, 50)) if self.retrieval_ms else 0.0,
            "retrieval_p95_ms": float(p(self.retrieval_ms, 95)) if self.retrieval_ms else 0.0,
            "reader_p50_ms": float(p(self.reader_ms, 50)) if self.reader_ms else 0.0,
            "reader_p95_ms": float(p(self.reader_ms, 95)) if self.reader_ms else 0.0,
        }


def customer(policy: Policy) -> Principal:
    return Principal(
        user_id="bench-customer", tenant_id=policy.slug, roles=("customer",), level=StaffLevel.NONE
    )


def oracle_sentence_f1(paragraph: str, answers: Sequence[str]) -> float:
    return max((token_f1(s, answers) for s in split_sentences(paragraph)), default=0.0)


def parse_overrides(pairs: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        block, _, name = key.partition(".")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(block, {})[name] = value
    return out


@dataclass(frozen=True)
class Retrieved:
    """One question's retrieval, kept so that reader variants are scored without searching
    again."""

    policy: Policy
    question: Question
    chunks: list[RetrievedChunk]
    covers: list[set[int]]
    latency_ms: float
    rejected: bool


def retrieve(
    policies: Sequence[Policy], settings: RetrieverSettings, *, every: int = 1
) -> list[Retrieved]:
    depth = max(max(KS), settings.top_k)
    engine = build_engine(settings)
    out = []
    try:
        report = engine.ingestor.ingest(policy_document(p) for p in policies)
        if report.failed:
            raise SystemExit(f"policies not ingested: {report.failed}")
        questions = [(p, q) for p in policies for q in p.questions][::every]
        for policy, q in tqdm(questions, desc="questions", unit="q", disable=None):
            started = time.perf_counter()
            retrieval = engine.retriever.retrieve(q.text, customer(policy), depth)
            latency = (time.perf_counter() - started) * 1000
            chunks = [_to_contract(c) for c in retrieval.result.chunks]
            covers = [set(covered_paragraphs(c.text, policy.paragraphs)) for c in chunks]
            out.append(
                Retrieved(policy, q, chunks, covers, latency, retrieval.rejected is not None)
            )
    finally:
        engine.close()
    return out


def score(records: Sequence[Retrieved], model: ExtractiveModel, top_k: int) -> Tally:
    tally = Tally()
    for r in records:
        score_one(r, model, top_k, tally)
    return tally


def score_one(r: Retrieved, model: ExtractiveModel, top_k: int, tally: Tally) -> None:
    policy, q, covers = r.policy, r.question, r.covers
    tally.retrieval_ms.append(r.latency_ms)
    tally.n += 1
    tally.rejected += r.rejected
    same = policy.same_question(q)
    for k in KS:
        seen = set().union(*covers[:k])
        tally.recall[k] += q.paragraph in seen
        tally.recall_same[k] += bool(seen & same)
    # The same ranking read paragraph by paragraph (a chunk's paragraphs in document order):
    # independent of chunk size, so a larger chunk does not buy recall by holding more.
    order = list(dict.fromkeys(i for cov in covers for i in sorted(cov)))
    for k in KS:
        tally.recall_para[k] += q.paragraph in order[:k]
        tally.recall_para_same[k] += bool(set(order[:k]) & same)
    context = r.chunks[:top_k]
    gold_in_context = any(q.paragraph in c for c in covers[:top_k])
    started = time.perf_counter()
    answer = model.answer(q.text, context)
    tally.reader_ms.append((time.perf_counter() - started) * 1000)
    text = _MARKER.sub("", answer.text) if answer.grounded else ""
    f1 = token_f1(text, q.answers)
    tally.f1.append(f1)
    tally.em += exact_match(text, q.answers)
    tally.refused += not answer.grounded
    cited = {c.chunk_id for c in answer.citations}
    tally.cites_gold += any(
        c.chunk_id in cited and q.paragraph in cov for c, cov in zip(context, covers, strict=False)
    )
    if gold_in_context:
        tally.in_context += 1
        tally.f1_in_context.append(f1)
    tally.oracle_f1.append(oracle_sentence_f1(policy.paragraphs[q.paragraph], q.answers))


def probe_records(policies: Sequence[Policy], settings: RetrieverSettings) -> list[Retrieved]:
    engine = build_engine(settings)
    out = []
    try:
        for policy in policies:
            for n, text in enumerate(UNANSWERABLE_PROBES):
                retrieval = engine.retriever.retrieve(text, customer(policy), settings.top_k)
                chunks = [_to_contract(c) for c in retrieval.result.chunks]
                q = Question(f"probe-{n}", text, -1, ())
                out.append(Retrieved(policy, q, chunks, [], 0.0, retrieval.rejected is not None))
    finally:
        engine.close()
    return out


def refusal_curve(
    answerable: Sequence[Retrieved], unanswerable: Sequence[Retrieved], top_k: int
) -> list[tuple[float, float, float]]:
    """(threshold, answered when the gold paragraph is in the agent's chunks, refused when
    unanswerable) for thresholds 0.30 .. 0.60."""
    model = ExtractiveModel()
    pos = [
        model.answerability(r.question.text, r.chunks[:top_k])
        for r in answerable
        if any(r.question.paragraph in c for c in r.covers[:top_k])
    ]
    neg = [model.answerability(r.question.text, r.chunks[:top_k]) for r in unanswerable]
    rows = []
    for threshold in np.arange(0.30, 0.605, 0.02):
        answered = float(np.mean([p >= threshold for p in pos])) if pos else 0.0
        refused = float(np.mean([n < threshold for n in neg])) if neg else 0.0
        rows.append((float(threshold), answered, refused))
    return rows


def print_report(label: str, s: dict[str, Any], scifact: dict[str, Any] | None) -> None:
    print(f"\nPolicyQA ({label}): {s['questions']} questions")
    print("| R@1 | R@5 | R@10 | R@5 same-q | gold in agent's chunks |")
    print(
        f"| {s['recall@1']:.3f} | {s['recall@5']:.3f} | {s['recall@10']:.3f}"
        f" | {s['recall_same_q@5']:.3f} | {s['gold_in_agent_chunks']:.3f} |"
    )
    print(
        f"paragraph by paragraph: R@1 {s['paragraph_recall@1']:.3f}, R@5"
        f" {s['paragraph_recall@5']:.3f}, R@10 {s['paragraph_recall@10']:.3f},"
        f" R@5 same-q {s['paragraph_recall_same_q@5']:.3f}"
    )
    print("| F1 | EM | F1, gold in chunks | best-sentence F1 | cites gold | refused |")
    print(
        f"| {s['f1']:.3f} | {s['em']:.3f} | {s['f1_gold_in_chunks']:.3f}"
        f" | {s['oracle_sentence_f1']:.3f} | {s['cites_gold']:.3f} | {s['refused']:.3f} |"
    )
    print(
        f"latency per question: retrieval p50 {s['retrieval_p50_ms']:.1f} / p95"
        f" {s['retrieval_p95_ms']:.1f} ms, reader p50 {s['reader_p50_ms']:.2f} / p95"
        f" {s['reader_p95_ms']:.2f} ms; queries refused by hygiene: {s['rejected_queries']}"
    )
    if scifact:
        r = scifact["stages"]["reranked"]
        print(
            f"beside SciFact ({scifact.get('split', 'train')}, same pipeline): nDCG@10"
            f" {r['ndcg@10']:.4f}, R@100 {r['recall@100']:.4f}, p50 {r['p50_ms']:.1f} ms"
        )
    else:
        print("SciFact beside it: make bench-retrieval ARGS='--json f.json'; then --scifact f.json")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="PolicyQA file (SQuAD layout)")
    parser.add_argument("--set", action="append", default=[], help="retriever setting override")
    parser.add_argument("--limit", type=int, default=0, help="about this many questions")
    parser.add_argument("--scifact", type=Path, help="bench-retrieval --json output to show")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    policies = load_policyqa(args.data)
    total = sum(len(p.questions) for p in policies)
    every = max(1, total // args.limit) if args.limit else 1
    overrides = parse_overrides(args.set)
    with tempfile.TemporaryDirectory(prefix="bench-kb-") as tmp:
        settings = RetrieverSettings.model_validate(
            overrides
            | {
                "index": IndexSettings(path=Path(tmp) / "index"),
                "cache": CacheSettings(enabled=False),
            }
        )
        records = retrieve(policies, settings, every=every)
        probes = probe_records(policies, settings)
    summary = score(records, ExtractiveModel(), settings.top_k).summary()
    label = ", ".join(args.set) or "defaults"
    scifact = json.loads(args.scifact.read_text()) if args.scifact else None
    print_report(label, summary, scifact)
    curve = refusal_curve(records, probes, settings.top_k)
    print("\nrefusal curve (answerability = best passage score; shipped threshold 0.44):")
    print("| threshold | answered, gold in chunks | refused, unanswerable probes |")
    for threshold, answered, refused in curve:
        print(f"| {threshold:.2f} | {answered:.3f} | {refused:.3f} |")
    summary["refusal_curve"] = curve
    if args.json:
        args.json.write_text(json.dumps({"settings": args.set, **summary}, indent=2))


if __name__ == "__main__":
    main()
