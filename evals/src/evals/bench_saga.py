"""``make bench-saga``: end-to-end latency and throughput of the saga through the running stack.

Three measurements, printed as a table:

1. **paced** — an open loop at ``--rate`` requests/s for ``--duration`` seconds: each request
   is ``POST /v1/chat?wait=`` and its latency is the time until the gateway answers with the
   settled result (request → retriever → agent → approver → gateway, over the broker).
2. **saturation** — a closed loop of ``--concurrency`` clients for ``--saturation-s`` seconds:
   completed requests per second is the throughput ceiling of this machine.
3. **floor** — the same pipeline in one process without the broker (embedding + hybrid
   search + permission filter + the agent's model + the policy decision), per request.

Start the stack first (``make up``); the floor builds its own index from the knowledge base.
Loopback only, bounded in count and time, stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from shared.auth import TokenService
from shared.principal import Principal, StaffLevel
from shared.settings import AuthSettings

QUESTIONS = [
    "How many days do I have to return an item?",
    "How long does standard delivery take?",
    "Do you price match other retailers?",
    "How do I reset my password in the app?",
    "What does the Ridgeline tent warranty cover?",
    "How do I dry my tent after a trip?",
    "Can I pick up my order in a store?",
    "Which payment methods do you accept?",
]

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Run:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0

    def row(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        done = len(self.latencies_ms)
        rate = done / self.elapsed_s if self.elapsed_s else float("nan")
        return (
            f"| {self.name:<24} | {done:>6} | {self.errors:>4} | {p50:>8.1f} | {p95:>8.1f} |"
            f" {p99:>8.1f} | {rate:>8.1f} |"
        )


async def _one(
    client: httpx.AsyncClient, headers: dict[str, str], i: int, run: Run, wait_s: float
) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/chat",
            params={"wait": wait_s},
            json={"message": QUESTIONS[i % len(QUESTIONS)]},
            headers=headers,
        )
        settled = response.status_code == 200 and response.json().get("settled")
    except httpx.HTTPError:
        settled = False
    if settled:
        run.latencies_ms.append((time.perf_counter() - started) * 1000)
    else:
        run.errors += 1


async def paced(
    base_url: str, headers: dict[str, str], rate: float, duration_s: float, wait_s: float
) -> Run:
    run = Run(f"paced {rate:g}/s x {duration_s:g}s")
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=base_url, timeout=wait_s + 10, limits=limits) as client:
        total = int(rate * duration_s)
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            # Open loop: send on schedule whether or not earlier requests have finished.
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, headers, i, run, wait_s)))
        await asyncio.gather(*tasks)
        run.elapsed_s = time.perf_counter() - started
    return run


async def saturation(
    base_url: str, headers: dict[str, str], concurrency: int, duration_s: float, wait_s: float
) -> Run:
    run = Run(f"saturation c={concurrency}")
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=wait_s + 10, limits=limits) as client:
        counter = iter(range(10**9))

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await _one(client, headers, next(counter), run, wait_s)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.elapsed_s = time.perf_counter() - started
    return run


def floor(requests: int, knowledge_base: Path) -> Run:
    """The pipeline's own work, in process, without the broker."""
    from agent.intents import detect_intent
    from agent.models import ExtractiveModel
    from retriever.engine import build_engine
    from retriever.settings import IndexSettings, RetrieverSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = RetrieverSettings(index=IndexSettings(path=Path(tmp) / "index"))
        engine = build_engine(settings)
        try:
            engine.ingestor.ingest_folder(knowledge_base)
            model = ExtractiveModel()
            principal = Principal(
                user_id="bench", tenant_id="harborpine", roles=("customer",), level=StaffLevel.NONE
            )
            from retriever.handlers import _to_contract

            run = Run("floor (in-process)")
            started = time.perf_counter()
            for i in range(requests):
                question = QUESTIONS[i % len(QUESTIONS)]
                t0 = time.perf_counter()
                result = engine.searcher.search(question, principal, settings.top_k)
                chunks = [_to_contract(c) for c in result.chunks]
                if detect_intent(question, user_id=principal.user_id) is None:
                    model.answer(question, chunks)
                run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            run.elapsed_s = time.perf_counter() - started
            return run
        finally:
            engine.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", default="http://127.0.0.1:8001")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--saturation-s", type=float, default=30.0)
    parser.add_argument("--wait", type=float, default=10.0, help="?wait= seconds per request")
    parser.add_argument("--floor-requests", type=int, default=300)
    parser.add_argument("--knowledge-base", type=Path, default=REPO / "deploy" / "knowledge-base")
    parser.add_argument("--skip-floor", action="store_true")
    args = parser.parse_args(argv)

    token = TokenService(AuthSettings()).mint(
        user_id="bench", tenant_id="harborpine", roles=["customer"], level="none", ttl_s=3600
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        httpx.get(f"{args.gateway}/healthz", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"the stack is not running at {args.gateway} ({exc}); run `make up` first"
        ) from None

    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}")
    asyncio.run(paced(args.gateway, headers, 2, 3, args.wait))  # warm-up: caches, connections
    runs = [asyncio.run(paced(args.gateway, headers, args.rate, args.duration, args.wait))]
    runs.append(
        asyncio.run(
            saturation(args.gateway, headers, args.concurrency, args.saturation_s, args.wait)
        )
    )
    if not args.skip_floor:
        runs.append(floor(args.floor_requests, args.knowledge_base))

    print(
        "\n| run                      |   done | errs |  p50 ms  |  p95 ms  |  p99 ms  |  req/s   |"
    )
    print(
        "|--------------------------|--------|------|----------|----------|----------|----------|"
    )
    for run in runs:
        print(run.row())
    if not args.skip_floor and runs[0].latencies_ms and runs[-1].latencies_ms:
        ratio = statistics.median(runs[0].latencies_ms) / statistics.median(runs[-1].latencies_ms)
        print(f"\np50 through the stack / p50 in-process floor = {ratio:.1f}x")


if __name__ == "__main__":
    main()
