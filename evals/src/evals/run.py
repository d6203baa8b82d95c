"""``make eval``: the platform end to end on a throw-away stack, scored on the KB's questions.

Every question of ``deploy/knowledge-base/eval-questions.jsonl`` is asked over HTTP as its
principal (tenant, roles, level). Scores:

- **grounded answers**: answerable questions answered with a citation of an expected document;
- **refusals**: out-of-scope questions refused;
- **permission leaks**: chunks of a document the principal may not read, anywhere in what the
  retriever handed on (must be 0);
- **actions**: requests for action that end pending approval with the expected tool;
- latency of the whole saga (p50 / p95).

The report is printed and written to ``evals/reports/eval-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from devstack.pytest_plugin import TopicProbe
from devstack.stack import LocalStack
from shared.auth import TokenService
from shared.settings import AuthSettings, KafkaSettings

from .stack import throwaway_stack

REPO = Path(__file__).resolve().parents[3]
QUESTIONS = REPO / "deploy" / "knowledge-base" / "eval-questions.jsonl"


async def ask_all(stack: LocalStack, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tokens = TokenService(AuthSettings())
    probe = TopicProbe(KafkaSettings(bootstrap_servers=stack.bootstrap), ["retrieved"])
    await probe.start()
    results = []
    try:
        async with httpx.AsyncClient(base_url=stack.url("gateway"), timeout=40) as client:
            for q in questions:
                token = tokens.mint(
                    user_id=f"eval-{q['id']}",
                    tenant_id=q["tenant"],
                    roles=q["roles"],
                    level=q["level"],
                )
                started = time.perf_counter()
                response = await client.post(
                    "/v1/chat",
                    params={"wait": 20},
                    json={"message": q["question"]},
                    headers={"Authorization": f"Bearer {token}"},
                )
                body = response.json()
                results.append(
                    {
                        "question": q,
                        "body": body,
                        "latency_ms": (time.perf_counter() - started) * 1000,
                    }
                )
        await asyncio.sleep(1.0)  # let the probe read the last retrieved messages
        retrieved: dict[str, set[str]] = {}
        for m in probe.on("retrieved"):
            body = m["body"] or {}
            retrieved.setdefault(m["headers"].get("request_id", ""), set()).update(
                c["doc_id"] for c in body.get("chunks", [])
            )
        for r in results:
            r["retrieved_docs"] = sorted(retrieved.get(r["body"].get("request_id", ""), set()))
    finally:
        await probe.stop()
    return results


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    leaks: list[str] = []
    for r in results:
        q, body = r["question"], r["body"]
        status = body.get("status")
        result = body.get("result") or {}
        cited = {c["doc_id"] for c in result.get("citations", [])}
        expected = set(q.get("expected_doc_ids", []))
        if q.get("action"):
            counts["actions"] += 1
            action = result.get("action") or {}
            if status == "pending_approval" or action.get("tool") == q["action"]:
                counts["actions_ok"] += 1
        elif q.get("answerable"):
            counts["answerable"] += 1
            if status == "answered" and cited & expected:
                counts["grounded"] += 1
        else:
            counts["unanswerable"] += 1
            forbidden = expected & set(r["retrieved_docs"])
            if forbidden:
                leaks.append(f"{q['id']}: {sorted(forbidden)}")
            if not expected:
                counts["out_of_scope"] += 1
                counts["out_of_scope_refused"] += status == "refused"
            elif not (cited & expected):
                counts["forbidden_not_answered"] += 1
    latencies = np.array([r["latency_ms"] for r in results])
    return {
        "questions": len(results),
        "grounded_answer_rate": counts["grounded"] / max(counts["answerable"], 1),
        "out_of_scope_refusal_rate": counts["out_of_scope_refused"]
        / max(counts["out_of_scope"], 1),
        "action_rate": counts["actions_ok"] / max(counts["actions"], 1),
        "permission_leaks": len(leaks),
        "leaks": leaks,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "counts": dict(counts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--docker", choices=["auto", "yes", "no"], default="auto")
    parser.add_argument("--out", type=Path, default=REPO / "evals" / "reports")
    args = parser.parse_args()
    questions = [
        json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()
    ]
    use_docker = None if args.docker == "auto" else args.docker == "yes"
    with throwaway_stack(use_docker=use_docker) as stack:
        results = asyncio.run(ask_all(stack, questions))
    report = score(results)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"report": report, "results": results}, indent=2, default=str))
    print(f"\n{len(questions)} questions from {args.questions}")
    grounded = report["grounded_answer_rate"]
    print(f"  grounded answers          {grounded:.1%}  (answered, citing an expected document)")
    print(f"  out-of-scope refusals     {report['out_of_scope_refusal_rate']:.1%}")
    print(f"  actions pending approval  {report['action_rate']:.1%}")
    print(f"  permission leaks          {report['permission_leaks']}")
    p50, p95 = report["latency_ms_p50"], report["latency_ms_p95"]
    print(f"  latency p50 / p95         {p50:.0f} / {p95:.0f} ms")
    print(f"  report                    {path}")
    raise SystemExit(1 if report["permission_leaks"] else 0)


if __name__ == "__main__":
    main()
