"""Kill the approver with SIGKILL at every step, dozens of times, and check nothing is lost or
repeated: every approved action has exactly one effect and one DraftDecided on the topic,
every outbox event is on its topic exactly once, and no pending approval is lost.

Real Tansu and real PostgreSQL (a database of its own). Most rounds run the light executor
process (``python -m approver.worker``: executor, relay, sweeper) with a failpoint armed
(``APPROVER_FAILPOINTS=<step>:<n>``: the process SIGKILLs itself the n-th time it reaches
the step); every fifth round kills it from outside at a random moment instead. A few rounds
run the whole approver (``python -m approver``) to kill intake and decisions. Then a clean
worker drains what is left and the invariants are checked.

Run alone: ``uv run pytest services/approver/tests/test_fault_injection.py -q``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from faststream.kafka import KafkaBroker
from psycopg import conninfo

from approver.domain import ApprovalPolicy, PolicySettings
from approver.postgres.store import PostgresApprovalStore
from approver.service_layer.decisions import decide
from approver.service_layer.intake import IntakePorts, handle_draft
from approver.testing.failpoints import Failpoints
from devstack import postgres
from devstack.ports import free_port
from devstack.pytest_plugin import LOCAL_ENV, TopicProbe
from devstack.seed import seed_demo_data
from shared.contracts import DraftProduced, Topic, utcnow
from shared.db import open_pool
from shared.db.migrate import upgrade
from shared.messaging import EventBus
from shared.principal import Principal, StaffLevel
from shared.settings import DatabaseSettings, KafkaSettings
from shared.testing import eventually
from shared.tools import default_registry

from .conftest import DraftFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

#: ``make test`` kills 24 times, enough to reach every step at least once; ``make fault-test``
#: (FAULT_TEST_MIN_KILLS=50) runs the long version, whose figures docs/workflow.md reports.
MIN_KILLS = int(os.environ.get("FAULT_TEST_MIN_KILLS", "24"))
WORKER_STEPS = (
    "execute.after_effect",
    "execute.before_commit",
    "execute.after_commit",
    "relay.before_publish",
    "relay.after_publish",
    "relay.after_mark",
)
EFFECT_TABLE = {
    "create_ticket": "tickets",
    "escalate": "escalations",
    "issue_refund": "refunds",
    "reset_password": "password_resets",
}
POLICY = ApprovalPolicy(PolicySettings())
KIM = Principal(user_id="kim", tenant_id="harborpine", roles=("support",), level=StaffLevel.L2)
MO = Principal(user_id="mo", tenant_id="harborpine", roles=("support",), level=StaffLevel.MANAGER)


@dataclass
class Chaos:
    kills: collections.Counter[str] = field(default_factory=collections.Counter)
    rounds: int = 0

    @property
    def total(self) -> int:
        return sum(self.kills.values())


@pytest.fixture
def fault_db(postgres_server: str) -> Iterator[str]:
    """A database of its own: the executor takes every approved action it finds."""
    url = conninfo.make_conninfo(postgres_server, dbname=f"approver_fault_{uuid.uuid4().hex[:8]}")
    postgres.create_database(url)
    upgrade(url)
    seed_demo_data(url)
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
async def store(
    fault_db: str, kafka_settings: KafkaSettings
) -> AsyncIterator[PostgresApprovalStore]:
    pool = await open_pool(DatabaseSettings(url=fault_db, pool_max_size=2), name="fault-test")  # type: ignore[arg-type]
    try:
        yield PostgresApprovalStore(pool, kafka_settings, Failpoints())
    finally:
        await pool.close()


def _env(kafka: KafkaSettings, db: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **LOCAL_ENV,
        "PLATFORM_ENV": "test",
        "TELEMETRY_EXPORTER": "none",
        "DATABASE_URL": db,
        "DATABASE_POOL_MAX_SIZE": "3",
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "APPROVER_RELAY__BATCH_SIZE": "3",  # many small batches: many relay steps to kill at
        "APPROVER_RELAY__POLL_INTERVAL_S": "0.2",
        "APPROVER_EXECUTOR__POLL_INTERVAL_S": "0.2",
        "APPROVER_SWEEP_INTERVAL_S": "0.5",
        # The worker's /metrics on any free port: never the fixed one of a running stack.
        "APPROVER_EXECUTOR__METRICS_PORT": "0",
        **extra,
    }


def _start(module: str, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.PIPE
    )


def _reap(process: subprocess.Popen[bytes], chaos: Chaos, *, timeout: float) -> None:
    """Wait for the armed process to kill itself; kill it from outside if it does not."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate()
        chaos.kills["external"] += 1
        return
    fired = [line for line in err.decode(errors="replace").splitlines() if "FAILPOINT" in line]
    assert process.returncode == -signal.SIGKILL and fired, err.decode(errors="replace")[-2000:]
    chaos.kills[fired[-1].split()[1].rstrip(":")] += 1


async def _db_counts(db: str) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(db) as conn:
        cur = await conn.execute(
            "SELECT status, count(*) FROM approvals.drafts GROUP BY status"
            " UNION ALL SELECT 'unpublished', count(*) FROM approvals.outbox"
            " WHERE published_at IS NULL"
        )
        return dict(await cur.fetchall())


async def _approve(store: PostgresApprovalStore, drafts: list[DraftProduced]) -> None:
    now = utcnow()
    for d in drafts:
        who = MO if d.action and d.action.tool == "reset_password" else KIM
        await decide(store, POLICY, who, d.event_id, "approve", "fault test", now=now)


def _make_drafts(make_draft: DraftFactory, n: int) -> list[DraftProduced]:
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("create_ticket", {"subject": "broken stove", "description": "it broke"}),
        ("escalate", {"reason": "customer asks for a manager"}),
        ("issue_refund", {"order_id": "HP-10024", "amount": "0.50", "reason": "late parcel"}),
        ("reset_password", {"user_id": "casey.customer"}),
    ]
    return [make_draft(*kinds[i % len(kinds)]) for i in range(n)]


async def test_sigkill_at_every_step_loses_and_repeats_nothing(
    fault_db: str,
    store: PostgresApprovalStore,
    kafka_settings: KafkaSettings,
    probe: TopicProbe,
    make_draft: DraftFactory,
    tmp_path: Any,
) -> None:
    started = time.monotonic()
    rng = random.Random(20261125)  # a fixed seed: a failing run can be replayed
    chaos = Chaos()
    log = (tmp_path / "processes.log").open("ab")
    intake = IntakePorts(store, POLICY, default_registry(), timedelta(hours=1))
    short = IntakePorts(store, POLICY, default_registry(), timedelta(seconds=2))

    # Drafts admitted in-process: to approve in waves, to reject, to leave pending, to expire.
    to_approve = _make_drafts(make_draft, 170)
    never = _make_drafts(make_draft, 10)
    rejected = _make_drafts(make_draft, 5)
    expiring = _make_drafts(make_draft, 5)
    for d in [*to_approve, *never, *rejected]:
        await handle_draft(d, intake)
    now = utcnow()
    for d in rejected:
        await decide(store, POLICY, MO, d.event_id, "reject", "not in policy", now=now)
    approved: list[DraftProduced] = []

    async def keep_work_available() -> None:
        counts = await _db_counts(fault_db)
        if counts.get("approved", 0) < 3 and len(approved) < len(to_approve):
            wave = to_approve[len(approved) : len(approved) + 3]
            await _approve(store, wave)
            approved.extend(wave)

    # -------------------------------------------------- whole approver: intake and decisions
    published = _make_drafts(make_draft, 6)
    publisher = KafkaBroker(kafka_settings.bootstrap_servers, enable_idempotence=False)
    async with publisher:
        bus = EventBus(publisher, kafka_settings, service="fault-test")
        for d in published:
            await bus.publish(Topic.DRAFT, d)
            await bus.publish(Topic.DRAFT, d)  # every draft delivered twice
    port = free_port()
    for step, countdown in (
        ("intake.before_commit", 1),
        ("intake.after_commit", 2),
        ("decide.before_commit", 1),
        ("decide.before_commit", 1),
    ):
        env = _env(
            kafka_settings,
            fault_db,
            APPROVER_FAILPOINTS=f"{step}:{countdown}",
            APPROVER_HTTP__PORT=str(port),
        )
        process = _start("approver", env, log)
        if step.startswith("decide"):
            target = never.pop()  # its sign-off must not survive the crash
            await _until_healthy(port, process)
            with pytest.raises(httpx.TransportError):
                async with httpx.AsyncClient(timeout=10) as client:
                    await client.post(
                        f"http://127.0.0.1:{port}/v1/approvals/{target.event_id}/approve",
                        headers={"Authorization": f"Bearer {_token('kim', 'L2')}"},
                    )
            got = await store.get("harborpine", target.event_id)
            assert got is not None and got.status.value == "pending" and not got.signoffs
            to_approve.append(target)  # approved later, by the waves
        await asyncio.to_thread(_reap, process, chaos, timeout=30)
        chaos.rounds += 1

    phases = {"approver rounds": time.monotonic() - started}
    # -------------------------------------------------- light worker: execution and relay
    while chaos.total < MIN_KILLS + 4:
        await keep_work_available()
        chaos.rounds += 1
        if chaos.rounds % 5 == 0:
            process = _start("approver.worker", _env(kafka_settings, fault_db), log)
            await asyncio.sleep(rng.uniform(0.8, 2.5))
            process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            chaos.kills["external"] += 1
            continue
        step = WORKER_STEPS[chaos.rounds % len(WORKER_STEPS)]
        if chaos.rounds == 8:
            # Admitted now, so no earlier round's sweeper expires them first; due in 2 s.
            for d in expiring:
                await handle_draft(d, short)
            step = "sweep.before_commit"
        countdown = 1 if step.startswith("sweep") else rng.randint(1, 3)
        env = _env(kafka_settings, fault_db, APPROVER_FAILPOINTS=f"{step}:{countdown}")
        process = _start("approver.worker", env, log)
        await asyncio.to_thread(_reap, process, chaos, timeout=6)

    phases["worker rounds"] = time.monotonic() - started - sum(phases.values())
    # -------------------------------------------------- drain with a clean approver
    await _approve(store, to_approve[len(approved) :])
    approved = list(to_approve)
    port = free_port()
    process = _start("approver", _env(kafka_settings, fault_db, APPROVER_HTTP__PORT=str(port)), log)
    try:

        async def settled() -> dict[str, int] | None:
            counts = await _db_counts(fault_db)
            admitted = await _admitted(fault_db, published)
            done = not counts.get("approved") and not counts.get("unpublished")
            return counts if done and admitted == len(published) else None

        counts = await eventually(settled, timeout=60, every=0.2)
        await eventually(
            lambda: _topic_has(probe, len(approved) + len(rejected) + len(expiring)), timeout=30
        )
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
    elapsed = time.monotonic() - started
    phases["drain"] = elapsed - sum(phases.values())

    # -------------------------------------------------- invariants
    assert chaos.total >= MIN_KILLS, chaos.kills
    for step in (
        *WORKER_STEPS,
        "sweep.before_commit",
        "intake.before_commit",
        "intake.after_commit",
        "decide.before_commit",
    ):
        assert chaos.kills[step] >= 1, f"no kill at {step}: {chaos.kills}"

    decided = collections.Counter(
        m["body"]["draft"]["event_id"] for m in probe.on("approved") if m["body"]
    )
    async with await psycopg.AsyncConnection.connect(fault_db) as conn:
        for d in approved:
            assert d.action is not None
            row = await (
                await conn.execute(
                    "SELECT status, execution ->> 'status' FROM approvals.drafts WHERE draft_event_id = %s",
                    (d.event_id,),
                )
            ).fetchone()
            assert row == ("executed", "succeeded"), (d.action.tool, row)
            effects = await (
                await conn.execute(
                    f"SELECT count(*) FROM tools.{EFFECT_TABLE[d.action.tool]} WHERE idempotency_key = %s",
                    (f"approval:{d.event_id}",),
                )
            ).fetchone()
            assert effects == (1,), f"{d.action.tool} {d.event_id}: {effects} effects"
            assert decided[str(d.event_id)] == 1, (
                f"{decided[str(d.event_id)]} DraftDecided for {d.event_id}"
            )
        for d in never:
            row = await (
                await conn.execute(
                    "SELECT status FROM approvals.drafts WHERE draft_event_id = %s", (d.event_id,)
                )
            ).fetchone()
            assert row == ("pending",), "a pending approval was lost"
            assert decided[str(d.event_id)] == 0
        for d in published:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM approvals.drafts WHERE draft_event_id = %s", (d.event_id,)
                )
            ).fetchone()
            assert row == (1,), "a draft delivered twice and killed during intake is stored once"
        for d in [*rejected, *expiring]:
            assert decided[str(d.event_id)] == 1
        outbox = await (
            await conn.execute("SELECT event_id, topic FROM approvals.outbox")
        ).fetchall()
    relayed = {kafka_settings.topic(Topic.APPROVED), kafka_settings.topic(Topic.AUDIT)}
    on_topics = collections.Counter(
        (m["topic"], m["body"]["event_id"])
        for m in probe.messages
        if m["topic"] in relayed and m["body"]
    )
    repeated = {k: n for k, n in on_topics.items() if n > 1}
    assert not repeated, f"events on a topic more than once: {list(repeated.items())[:5]}"
    missing = [(t, str(e)) for e, t in outbox if on_topics[(t, str(e))] != 1]
    assert not missing, f"outbox events not on their topic: {missing[:5]}"
    assert sum(decided.values()) == len(approved) + len(rejected) + len(expiring)
    print(
        f"\nfault test: {chaos.total} SIGKILLs in {chaos.rounds} rounds, {elapsed:.0f}s;"
        f" by step: {dict(sorted(chaos.kills.items()))}; {len(approved)} actions executed,"
        f" {len(outbox)} outbox events each once on its topic; final counts {counts};"
        f" phases { ({k: round(v) for k, v in phases.items()}) }"
    )


async def _admitted(db: str, drafts: list[DraftProduced]) -> int:
    async with await psycopg.AsyncConnection.connect(db) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM approvals.drafts WHERE draft_event_id = ANY(%s)",
                ([d.event_id for d in drafts],),
            )
        ).fetchone()
        return int(row[0]) if row else 0


async def _topic_has(probe: TopicProbe, n: int) -> bool:
    return len([m for m in probe.on("approved") if m["body"]]) >= n


async def _until_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    async def up() -> bool:
        assert process.poll() is None, "the approver exited while starting"
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, timeout=30, every=0.1)


def _token(user: str, level: str) -> str:
    from shared.auth import TokenService
    from shared.settings import AuthSettings

    return TokenService(AuthSettings()).mint(
        user_id=user, tenant_id="harborpine", roles=["support"], level=level
    )
