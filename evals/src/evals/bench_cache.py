"""``make bench-cache``: what the shared caches save, through a whole stack, off and then on.

2,000 requests (``--requests``) drawn Zipf-wise (s = 1.1) from 200 questions, asked by two
principals of one tenant whose permission scopes differ (a customer, an L1 support agent),
each through ``POST /v1/chat?wait=`` of an ephemeral stack this command starts itself (random
ports, its own database; devstack), first with every cache off (``CACHE_ENABLED=false``), then
on (Redis when one answers at ``--redis``, else in process). Reported per run: the hit rate of
each cache (from the services' ``/metrics``), p50 / p95 latency, and the cost of the run at a
paid model's prices (``--price-as``) on the token counts the services recorded (the offline
model's tokens are those of the prompt a chat model would have been sent). And the permission
check: every answer's citations must be readable by the principal who got it.

The 200 questions are the knowledge base's own questions (``eval-questions.jsonl``) and the
eval dataset's answer cases for the tenant, completed with reworded variants ("Quick question:
...") that normalise to different keys, so each is its own cache entry.

Loopback only; bounded by ``--requests`` and ``--max-seconds`` per run; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from devstack.stack import LocalStack, StackConfig
from shared.auth import TokenService
from shared.pricing import DEFAULT_PRICES
from shared.principal import Principal, StaffLevel
from shared.settings import AuthSettings

from .permissions import AccessOracle

__all__ = ["PRINCIPALS", "Sample", "build_questions", "zipf_sample"]

REPO = Path(__file__).resolve().parents[3]
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"
DATASET = REPO / "evals" / "dataset.jsonl"
TENANT = "harborpine"
PRINCIPALS = (
    Principal(user_id="bench-customer", tenant_id=TENANT, roles=("customer",)),
    Principal(user_id="bench-agent", tenant_id=TENANT, roles=("support",), level=StaffLevel.L1),
)
_VARIANTS = ("Quick question: {q}", "Can you tell me: {q}", "{q} Thanks!", "Hi, {q}")


def build_questions(knowledge_base: Path, dataset: Path, n: int = 200) -> list[str]:
    """``n`` distinct questions of the tenant, no actions: originals first, then variants."""
    found: list[str] = []
    for line in (knowledge_base / "eval-questions.jsonl").read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("tenant") == TENANT and not row.get("action"):
            found.append(str(row["question"]))
    for line in dataset.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("kind") == "answer" and row.get("principal", {}).get("tenant") == TENANT:
            found.append(str(row["input"]))
    originals = list(dict.fromkeys(q.strip() for q in found if q.strip()))
    questions = list(originals)
    for template in _VARIANTS:
        questions += [template.format(q=q) for q in originals]
    if len(questions) < n:
        raise SystemExit(f"only {len(questions)} questions could be built, {n} asked for")
    return questions[:n]


def zipf_sample(count: int, n: int, s: float, rng: random.Random) -> list[int]:
    """``count`` ranks in [0, n) with P(k) proportional to (k + 1) ** -s."""
    weights = [(k + 1) ** -s for k in range(n)]
    return rng.choices(range(n), weights=weights, k=count)


@dataclass
class Sample:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    violations: list[str] = field(default_factory=list)
    answers: int = 0
    elapsed_s: float = 0.0


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scrape(stack: LocalStack) -> dict[str, float]:
    retriever = httpx.get(f"{stack.url('retriever')}/metrics", timeout=10).text
    agent = httpx.get(f"{stack.url('agent')}/metrics", timeout=10).text
    out = {}
    for cache, text in (("embedding", retriever), ("retrieval", retriever), ("answer", agent)):
        for result in ("hit", "miss"):
            out[f"{cache}.{result}"] = _counter(
                text, "platform_cache_lookups_total", cache=cache, result=result
            )
    out["cost_usd"] = _counter(agent, "platform_request_cost_usd_sum")
    out["priced_requests"] = _counter(agent, "platform_request_cost_usd_count")
    return out


async def _drive(
    base_url: str,
    plan: Sequence[tuple[int, str]],
    oracle: AccessOracle,
    *,
    concurrency: int,
    max_s: float,
    wait_s: float,
) -> Sample:
    tokens = TokenService(AuthSettings())
    headers = [
        {
            "Authorization": "Bearer "
            + tokens.mint(
                user_id=p.user_id,
                tenant_id=p.tenant_id,
                roles=list(p.roles),
                level=p.level.value,
                ttl_s=3600,
            )
        }
        for p in PRINCIPALS
    ]
    sample = Sample()
    queue = list(reversed(plan))
    deadline = time.monotonic() + max_s
    started = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        while queue and time.monotonic() < deadline:
            who, question = queue.pop()
            t0 = time.perf_counter()
            try:
                response = await client.post(
                    "/v1/chat",
                    params={"wait": wait_s},
                    json={"message": question},
                    headers=headers[who],
                )
                view = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                view = {}
            if not view.get("settled"):
                sample.errors += 1
                continue
            sample.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result = view.get("result") or {}
            if result.get("kind") == "answer":
                sample.answers += 1
            for citation in result.get("citations") or []:
                doc_id = str(citation.get("doc_id"))
                if oracle.forbidden(PRINCIPALS[who], tenant=TENANT, doc_id=doc_id):
                    sample.violations.append(f"{PRINCIPALS[who].user_id} got {doc_id}")

    async with httpx.AsyncClient(base_url=base_url, timeout=wait_s + 10) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    sample.elapsed_s = time.monotonic() - started
    return sample


def _run(
    name: str, env: dict[str, str], plan: Sequence[tuple[int, str]], args: argparse.Namespace
) -> dict[str, object]:
    oracle = AccessOracle.from_knowledge_base(args.knowledge_base, max_bytes=20 * 1024 * 1024)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        config = StackConfig.ephemeral(Path(tmp), extra_env=env)
        config.knowledge_base = args.knowledge_base
        stack = LocalStack(config)
        print(f"[{name}] starting an ephemeral stack ...", flush=True)
        stack.up(timeout=300)
        try:
            gateway = stack.url("gateway")
            # Warm-up outside the measurement, with questions that are not in the plan.
            warm = [(0, "What are your opening hours? (warm-up)"), (1, "Hello (warm-up)")]
            asyncio.run(_drive(gateway, warm, oracle, concurrency=2, max_s=60, wait_s=args.wait))
            before = _scrape(stack)
            sample = asyncio.run(
                _drive(
                    gateway,
                    plan,
                    oracle,
                    concurrency=args.concurrency,
                    max_s=args.max_seconds,
                    wait_s=args.wait,
                )
            )
            after = _scrape(stack)
        finally:
            stack.down()
    delta = {k: after[k] - before[k] for k in after}
    lat = np.array(sample.latencies_ms or [float("nan")])
    hits = {}
    for cache in ("embedding", "retrieval", "answer"):
        looked = delta[f"{cache}.hit"] + delta[f"{cache}.miss"]
        hits[cache] = delta[f"{cache}.hit"] / looked if looked else None
    return {
        "run": name,
        "done": len(sample.latencies_ms),
        "errors": sample.errors,
        "answers": sample.answers,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "cost_usd": delta["cost_usd"],
        "priced_requests": delta["priced_requests"],
        "hit_rate": hits,
        "violations": sample.violations,
        "elapsed_s": sample.elapsed_s,
    }


def _row(r: dict[str, object]) -> str:
    hits = r["hit_rate"]
    assert isinstance(hits, dict)
    rates = " | ".join("-" if hits[c] is None else f"{hits[c]:.0%}" for c in hits)
    return (
        f"| {r['run']:<11} | {r['done']:>5} | {r['errors']:>4} | {r['p50_ms']:>7.1f} |"
        f" {r['p95_ms']:>7.1f} | {r['cost_usd']:>10.5f} | {rates} |"
        f" {len(r['violations']):>10} |"  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="per run")
    parser.add_argument("--wait", type=float, default=20.0, help="?wait= seconds per request")
    parser.add_argument("--knowledge-base", type=Path, default=KNOWLEDGE_BASE)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--price-as", default="gpt-4.1-mini", help="chat model whose prices")
    parser.add_argument("--embedding-price-as", default="text-embedding-3-small")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    questions = build_questions(args.knowledge_base, args.dataset, args.questions)
    rng = random.Random(args.seed)
    ranks = zipf_sample(args.requests, len(questions), args.zipf_s, rng)
    plan = [(rng.randrange(len(PRINCIPALS)), questions[k]) for k in ranks]
    chat, emb = DEFAULT_PRICES[args.price_as], DEFAULT_PRICES[args.embedding_price_as]
    # The offline models priced as the paid ones: the same tokens, at a real model's rates.
    prices = {
        "extractive-v3": chat.model_dump(),
        "all-MiniLM-L6-v2-int8": {"embedding_per_1k": emb.embedding_per_1k},
    }
    common = {
        "PRICING_MODELS": json.dumps(prices),
        "AGENT_RATE_LIMIT__READ_BURST": "10000",
        "AGENT_RATE_LIMIT__READ_PER_MINUTE": "60000",
    }
    redis_ok = _redis_answers(args.redis)
    on_env = {**common, "CACHE_ENABLED": "true", "CACHE_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}"}
    if redis_ok:
        on_env["REDIS_URL"] = args.redis
    print(
        f"{args.requests} requests, Zipf s={args.zipf_s} over {len(questions)} questions"
        f" ({len(set(ranks))} distinct drawn), 2 principals, concurrency {args.concurrency};"
        f" priced as {args.price_as} / {args.embedding_price_as};"
        f" caches on: {'Redis ' + args.redis if redis_ok else 'in process (no Redis answered)'}"
    )
    off = _run("caches off", {**common, "CACHE_ENABLED": "false"}, plan, args)
    on = _run("caches on", on_env, plan, args)
    print(
        "\n| run         |  done | errs | p50 ms  | p95 ms  |   cost USD | embedding | retrieval"
        " | answer | violations |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print(_row(off))
    print(_row(on))
    cost_cut = 1 - float(on["cost_usd"]) / float(off["cost_usd"]) if off["cost_usd"] else 0.0  # type: ignore[arg-type]
    p50_cut = 1 - float(on["p50_ms"]) / float(off["p50_ms"])  # type: ignore[arg-type]
    violations = len(off["violations"]) + len(on["violations"])  # type: ignore[arg-type]
    print(
        f"\ncost down {cost_cut:.0%} (target >= 60%), p50 down {p50_cut:.0%} (target >= 40%),"
        f" answers across a permission boundary: {violations} (target 0)"
    )
    if args.json:
        args.json.write_text(json.dumps({"off": off, "on": on}, indent=2))
    if violations:
        raise SystemExit(1)


def _redis_answers(url: str) -> bool:
    match = re.match(r"redis://([^:/]+):(\d+)", url)
    if not match:
        return False
    import socket

    try:
        with socket.create_connection((match[1], int(match[2])), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


if __name__ == "__main__":
    main()
