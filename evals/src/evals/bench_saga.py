"""``make bench-saga``: end-to-end latency and throughput of the saga through the running stack.

Three measurements, each printed as a table row as soon as it is done:

1. **paced**: an open loop at ``--rate`` requests/s for ``--duration`` seconds. Each request
   is ``POST /v1/chat?wait=`` and its latency is the time until the gateway answers with the
   settled result (gateway → request → retriever → retrieved → agent → draft → approver →
   approved → gateway, over the broker, every step audited into PostgreSQL);
2. **saturation**: a closed loop of ``--concurrency`` clients for ``--saturation-s`` seconds:
   completed requests per second is the throughput ceiling of this machine;
3. **floor**: the same handlers in one process, with FastStream's in-memory broker instead of
   Kafka, HTTP and PostgreSQL: the input screen, hybrid retrieval under the permission filter,
   the agent (routing, model, citation check, redaction) and the contracts' serialisation.

Every request asks a distinct question (a knowledge-base question plus a nonce), so nothing is
answered from the retriever's cache: these are the uncached figures. ``--repeat`` asks the
knowledge-base questions as they are, as a help desk hears the same ones again and again. The
retriever's cache hit ratio during each run is printed beside it, read from its /metrics.

Start the stack first (``make up``); the floor builds its own index from the knowledge base.
Loopback only, bounded in count and time, stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import string
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from shared.auth import TokenService
from shared.principal import Principal, StaffLevel
from shared.settings import AuthSettings

REPO = Path(__file__).resolve().parents[3]
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"
CUSTOMER = Principal(
    user_id="bench", tenant_id="harborpine", roles=("customer",), level=StaffLevel.NONE
)


def customer_questions(knowledge_base: Path) -> list[str]:
    """The knowledge base's answerable customer questions (no actions: they wait for people)."""
    path = knowledge_base / "eval-questions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        r["question"]
        for r in rows
        if r["tenant"] == CUSTOMER.tenant_id
        and r["roles"] == list(CUSTOMER.roles)
        and r.get("answerable")
        and not r.get("action")
    ]


class Questions:
    """The i-th question of a run; with ``distinct`` a nonce makes each one a cache miss."""

    def __init__(self, questions: list[str], *, distinct: bool) -> None:
        self.questions = questions
        self.distinct = distinct
        # Unseeded: a second run against the same stack must not meet the first run's nonces.
        self._random = random.Random()

    def __call__(self, i: int) -> str:
        question = self.questions[i % len(self.questions)]
        if not self.distinct:
            return question
        # Letters only: a word no document holds moves no BM25 score and asks for no tool.
        nonce = "".join(self._random.choices(string.ascii_lowercase, k=8))
        return f"{question} ({nonce})"


@dataclass
class Run:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0
    cache_hit_ratio: float | None = None

    def row(self) -> str:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        done = len(self.latencies_ms)
        rate = done / self.elapsed_s if self.elapsed_s else float("nan")
        hits = "-" if self.cache_hit_ratio is None else f"{self.cache_hit_ratio:.0%}"
        return (
            f"| {self.name:<24} | {done:>6} | {self.errors:>4} | {p50:>8.1f} | {p95:>8.1f} |"
            f" {p99:>8.1f} | {rate:>8.1f} | {hits:>10} |"
        )


HEADER = (
    "| run                      |   done | errs |  p50 ms  |  p95 ms  |  p99 ms  |  req/s   "
    "| cache hits |\n"
    "|--------------------------|--------|------|----------|----------|----------|----------"
    "|------------|"
)


async def _one(
    client: httpx.AsyncClient, headers: dict[str, str], question: str, run: Run, wait_s: float
) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/chat", params={"wait": wait_s}, json={"message": question}, headers=headers
        )
        settled = response.status_code == 200 and response.json().get("settled")
    except httpx.HTTPError:
        settled = False
    if settled:
        run.latencies_ms.append((time.perf_counter() - started) * 1000)
    else:
        run.errors += 1


async def paced(
    base_url: str,
    headers: dict[str, str],
    questions: Callable[[int], str],
    rate: float,
    duration_s: float,
    wait_s: float,
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
            tasks.append(asyncio.create_task(_one(client, headers, questions(i), run, wait_s)))
        await asyncio.gather(*tasks)
        run.elapsed_s = time.perf_counter() - started
    return run


async def saturation(
    base_url: str,
    headers: dict[str, str],
    questions: Callable[[int], str],
    concurrency: int,
    duration_s: float,
    wait_s: float,
) -> Run:
    run = Run(f"saturation c={concurrency}")
    deadline = time.perf_counter() + duration_s
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=wait_s + 10, limits=limits) as client:
        counter = iter(range(10**9))

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await _one(client, headers, questions(next(counter)), run, wait_s)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.elapsed_s = time.perf_counter() - started
    return run


_LOOKUPS = re.compile(r'^retriever_cache_lookups_total\{result="(hit|miss)"\} (\S+)$', re.MULTILINE)


def cache_lookups(retriever_url: str) -> dict[str, float]:
    """The retriever's cache hits and misses so far (empty if it does not answer)."""
    try:
        text = httpx.get(f"{retriever_url}/metrics", timeout=3).text
    except httpx.HTTPError:
        return {}
    return {kind: float(value) for kind, value in _LOOKUPS.findall(text)}


def hit_ratio(before: dict[str, float], after: dict[str, float]) -> float | None:
    hits = after.get("hit", 0.0) - before.get("hit", 0.0)
    misses = after.get("miss", 0.0) - before.get("miss", 0.0)
    return hits / (hits + misses) if hits + misses else None


async def floor(requests: int, knowledge_base: Path, questions: Callable[[int], str]) -> Run:
    """The saga's handlers in one process, over FastStream's in-memory broker."""
    from faststream.kafka import KafkaMessage, TestKafkaBroker

    from agent.app import build_agent
    from agent.ratelimit import InMemoryRateLimiter
    from agent.settings import AgentSettings
    from retriever.documents import discover, load_many
    from retriever.engine import build_engine
    from retriever.handlers import RetrieverPorts, handle_chat_requested
    from retriever.settings import CacheSettings, IndexSettings, RetrieverSettings
    from shared.contracts import ChatRequested, DraftProduced, Topic
    from shared.guardrails import default_input_screen
    from shared.messaging import EventBus
    from shared.settings import KafkaSettings

    kafka = KafkaSettings()
    with tempfile.TemporaryDirectory() as tmp:
        settings = RetrieverSettings(
            kafka=kafka,
            index=IndexSettings(path=Path(tmp) / "index"),
            cache=CacheSettings(enabled=False),
        )
        engine = await asyncio.to_thread(build_engine, settings)
        try:
            await asyncio.to_thread(
                engine.ingestor.ingest,
                load_many(discover(knowledge_base), max_bytes=settings.ingest.max_document_bytes),
            )
            # Read tools and rate limits are not on this path (knowledge questions only): the
            # agent never opens its database here.
            agent = build_agent(AgentSettings(kafka=kafka), limiter=InMemoryRateLimiter())
            drafts: dict[str, asyncio.Future[DraftProduced]] = {}

            @agent.service.broker.subscriber(kafka.topic(Topic.DRAFT), group_id="bench")
            async def on_draft(message: KafkaMessage) -> None:
                draft = DraftProduced.model_validate_json(message.body)
                drafts[str(draft.request_id)].set_result(draft)

            async with TestKafkaBroker(agent.service.broker) as broker:
                ports = RetrieverPorts(
                    retriever=engine.retriever,
                    screen=default_input_screen(),
                    bus=EventBus(broker, kafka, service="retriever"),
                    top_k=settings.top_k,
                )
                run = Run("floor (in-process)")
                loop = asyncio.get_running_loop()
                started = time.perf_counter()
                for i in range(requests):
                    event = ChatRequested(
                        request_id=uuid.uuid4(),
                        tenant_id=CUSTOMER.tenant_id,
                        principal=CUSTOMER,
                        message=questions(i),
                    )
                    t0 = time.perf_counter()
                    drafts[str(event.request_id)] = loop.create_future()
                    await handle_chat_requested(event, ports)  # publishes to the agent
                    await drafts.pop(str(event.request_id))
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
    parser.add_argument("--retriever", default="http://127.0.0.1:8002", help="for cache metrics")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--saturation-s", type=float, default=30.0)
    parser.add_argument("--wait", type=float, default=10.0, help="?wait= seconds per request")
    parser.add_argument("--floor-requests", type=int, default=300)
    parser.add_argument("--knowledge-base", type=Path, default=KNOWLEDGE_BASE)
    parser.add_argument("--repeat", action="store_true", help="repeat questions (cache hits)")
    parser.add_argument("--skip-floor", action="store_true")
    args = parser.parse_args(argv)

    token = TokenService(AuthSettings()).mint(
        user_id=CUSTOMER.user_id,
        tenant_id=CUSTOMER.tenant_id,
        roles=list(CUSTOMER.roles),
        level=CUSTOMER.level.value,
        ttl_s=3600,
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        httpx.get(f"{args.gateway}/healthz", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        raise SystemExit(
            f"the stack is not running at {args.gateway} ({exc}); run `make up` first"
        ) from None

    questions = Questions(customer_questions(args.knowledge_base), distinct=not args.repeat)
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(
        f"{len(questions.questions)} knowledge-base questions, "
        f"{'repeated' if args.repeat else 'each request made distinct (no cache hits)'}\n"
    )
    # Warm-up: connections, the models' first calls.
    asyncio.run(paced(args.gateway, headers, questions, 2, 3, args.wait))
    print(HEADER, flush=True)

    def measured(run_it: Callable[[], Run]) -> Run:
        before = cache_lookups(args.retriever)
        run = run_it()
        run.cache_hit_ratio = hit_ratio(before, cache_lookups(args.retriever))
        print(run.row(), flush=True)
        return run

    paced_run = measured(
        lambda: asyncio.run(
            paced(args.gateway, headers, questions, args.rate, args.duration, args.wait)
        )
    )
    measured(
        lambda: asyncio.run(
            saturation(
                args.gateway, headers, questions, args.concurrency, args.saturation_s, args.wait
            )
        )
    )
    if args.skip_floor:
        return
    floor_run = asyncio.run(floor(args.floor_requests, args.knowledge_base, questions))
    print(floor_run.row(), flush=True)
    if paced_run.latencies_ms and floor_run.latencies_ms:
        ratio = statistics.median(paced_run.latencies_ms) / statistics.median(
            floor_run.latencies_ms
        )
        print(f"\np50 through the stack / p50 in-process floor = {ratio:.1f}x")


if __name__ == "__main__":
    main()
