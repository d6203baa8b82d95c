"""``make bench-answers``: answer quality of the offline extractive model on the knowledge base.

Every non-action question of ``deploy/knowledge-base/eval-questions.jsonl`` is retrieved once
as its principal (the product's retriever, top 6, no cache) and answered by the model at each
``--min-relevance``, so only the model varies between rows:

- **grounded**: answerable questions answered with a citation of an expected document;
- **fact recall**: share of the numbers in each answerable question's reference note that the
  answer states (the note holds the facts a correct answer gives: "30 days", "75 EUR");
- **refuses unanswerable**: questions whose answer the principal may not read (another tenant,
  a higher level) or that no document answers, refused.

In process, no broker: ``make eval`` asks the same questions through the running platform.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.contracts import RetrievedChunk
from shared.principal import Principal, StaffLevel

REPO = Path(__file__).resolve().parents[3]
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass
class Score:
    answerable: int = 0
    grounded: int = 0
    facts: int = 0
    facts_stated: int = 0
    unanswerable: int = 0
    refused: int = 0

    def row(self, label: str) -> str:
        return (
            f"| {label:<23} | {self.grounded / self.answerable:.3f} |"
            f" {self.facts_stated / max(self.facts, 1):.3f} |"
            f" {self.refused / max(self.unanswerable, 1):.3f} |"
        )


def retrieve_all(
    questions: Sequence[dict[str, Any]], knowledge_base: Path
) -> list[list[RetrievedChunk]]:
    from retriever.documents import discover, load_many
    from retriever.engine import build_engine
    from retriever.handlers import _to_contract
    from retriever.settings import CacheSettings, IndexSettings, RetrieverSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = RetrieverSettings(
            index=IndexSettings(path=Path(tmp) / "index"), cache=CacheSettings(enabled=False)
        )
        engine = build_engine(settings)
        try:
            engine.ingestor.ingest(
                load_many(discover(knowledge_base), max_bytes=settings.ingest.max_document_bytes)
            )
            out = []
            for q in questions:
                principal = Principal(
                    user_id="eval",
                    tenant_id=q["tenant"],
                    roles=tuple(q["roles"]),
                    level=StaffLevel(q["level"]),
                )
                # The read path the service runs: hygiene, search, sentence similarities.
                retrieval = engine.retriever.retrieve(q["question"], principal, settings.top_k)
                out.append([_to_contract(c) for c in retrieval.result.chunks])
            return out
        finally:
            engine.close()


def score(
    questions: Sequence[dict[str, Any]],
    retrieved: Sequence[list[RetrievedChunk]],
    min_relevance: float,
    *,
    semantic_weight: float = 0.4,
    show: bool = False,
) -> Score:
    from agent.models import ExtractiveModel

    model = ExtractiveModel(min_relevance=min_relevance, semantic_weight=semantic_weight)
    s = Score()
    for q, chunks in zip(questions, retrieved, strict=True):
        answer = model.answer(q["question"], chunks)
        cited = {c.doc_id for c in answer.citations}
        if q.get("answerable"):
            s.answerable += 1
            s.grounded += bool(cited & set(q["expected_doc_ids"]))
            facts = set(_NUMBER.findall(q.get("note", "")))
            stated = {f for f in facts if f in answer.text}
            s.facts += len(facts)
            s.facts_stated += len(stated)
            if show and stated != facts:
                print(f"- {q['id']}: {q['question']}\n    expected: {q['note']}\n    {answer.text}")
        else:
            s.unanswerable += 1
            s.refused += not answer.grounded
            if show and answer.grounded:
                print(f"- {q['id']} (should refuse): {q['question']}\n    {answer.text}")
    return s


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--knowledge-base", type=Path, default=KNOWLEDGE_BASE)
    parser.add_argument(
        "--min-relevance", type=float, action="append", help="repeat to compare (default: 0.44)"
    )
    parser.add_argument(
        "--semantic-weight",
        type=float,
        action="append",
        help="share of meaning in a sentence's score; repeat to compare (default: 0.4;"
        " 0 is the word-overlap model of before)",
    )
    parser.add_argument("--show", action="store_true", help="print the answers that miss")
    args = parser.parse_args(argv)
    path = args.knowledge_base / "eval-questions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    questions = [q for q in rows if not q.get("action")]
    retrieved = retrieve_all(questions, args.knowledge_base)
    answerable = sum(bool(q.get("answerable")) for q in questions)
    print(f"{answerable} answerable and {len(questions) - answerable} unanswerable questions\n")
    print("| semantic, min_relevance | grounded | fact recall | refuses unanswerable |")
    print("|-------------------------|----------|-------------|----------------------|")
    for weight in args.semantic_weight or [0.4]:
        for threshold in args.min_relevance or [0.44]:
            result = score(questions, retrieved, threshold, semantic_weight=weight, show=args.show)
            print(result.row(f"{weight:.2f}, {threshold:.2f}"), flush=True)


if __name__ == "__main__":
    main()
