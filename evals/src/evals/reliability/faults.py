"""The faults ``make reliability`` injects into a running local stack, one kind at a time."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from devstack.stack import LocalStack
from shared.contracts import Topic
from shared.settings import KafkaSettings

__all__ = ["KillLog", "kill_rounds", "poison_every_topic", "restart_database"]


@dataclass
class KillLog:
    kills: dict[str, int] = field(default_factory=dict)
    #: Seconds from a round's first kill until no request was left waiting on a step (the
    #: backlog the restarts built up is drained): the next round starts only then.
    drained_after_s: list[float] = field(default_factory=list)
    #: Seconds from each SIGKILL until the program ran again with a new pid (supervisord).
    back_after_s: dict[str, list[float]] = field(default_factory=dict)
    #: Seconds until the restarted service answered /healthz again (consumer group joined).
    healthy_after_s: dict[str, list[float]] = field(default_factory=dict)


async def kill_rounds(
    stack: LocalStack,
    programs: list[str],
    *,
    rounds: int,
    spacing_s: float,
    log: KillLog,
    drained: Callable[[], Awaitable[bool]],
    drain_timeout_s: float = 120.0,
) -> None:
    """SIGKILL each program ``rounds`` times; within a round one after the other, ``spacing_s``
    apart, then wait until all of them are healthy again *and* ``drained()`` says the backlog
    they left is worked off, before the next round.

    Healthy is not recovered: a restarted retriever answers /healthz as soon as its index is
    open, then works through every request that arrived while it was down. Killing again
    before that (as a first version of this harness did) measures how long a backlog can be
    kept from draining, and times requests out that a real outage of this kind would not.
    Nothing restarts the programs but supervisord: the harness only kills and watches.
    """

    async def back(name: str, pid: int, at: float) -> None:
        await asyncio.to_thread(stack.wait_running, name, new_pid_than=pid, timeout=60)
        log.back_after_s.setdefault(name, []).append(round(time.monotonic() - at, 2))
        await asyncio.to_thread(stack.wait_healthy, [name], timeout=120)
        log.healthy_after_s.setdefault(name, []).append(round(time.monotonic() - at, 2))

    for _ in range(rounds):
        # Each program is watched from the moment it is killed, on its own: watching after
        # the round's last kill, or one after the other, would charge each for the others.
        watching = []
        first_kill = time.monotonic()
        for name in programs:
            pid = stack.kill(name, signal.SIGKILL)
            watching.append(asyncio.create_task(back(name, pid, time.monotonic())))
            log.kills[name] = log.kills.get(name, 0) + 1
            await asyncio.sleep(spacing_s)
        await asyncio.gather(*watching)
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            if await drained():
                break
            await asyncio.sleep(0.5)
        log.drained_after_s.append(round(time.monotonic() - first_kill, 2))


async def restart_database(stack: LocalStack) -> float:
    """Crash the stack's private PostgreSQL (immediate stop) and start it again; seconds."""
    started = time.monotonic()
    await asyncio.to_thread(stack.restart_database, mode="immediate")
    return round(time.monotonic() - started, 2)


def _poison(kind: str, request_id: str) -> bytes:
    """Bytes no consumer can decode, one kind per reason the dead-letter route knows."""
    if kind == "malformed_json":
        return b'{"schema_version": 1, "request_id": '
    version = 99 if kind == "unknown_schema_version" else 1  # else: required fields missing
    return json.dumps(
        {"schema_version": version, "request_id": request_id, "tenant_id": "harborpine"}
    ).encode()


POISON_KINDS = ("malformed_json", "unknown_schema_version", "invalid_fields")


async def poison_every_topic(kafka: KafkaSettings) -> dict[str, list[str]]:
    """Publish each kind of poison to each of the five topics; returns request ids by topic."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=kafka.enable_idempotence
    )
    sent: dict[str, list[str]] = {}
    await producer.start()
    try:
        for topic in Topic:
            for kind in POISON_KINDS:
                request_id = str(uuid.uuid4())
                await producer.send_and_wait(
                    kafka.topic(topic.value),
                    _poison(kind, request_id),
                    key=request_id.encode(),
                    headers=[("request_id", request_id.encode()), ("tenant_id", b"harborpine")],
                )
                sent.setdefault(topic.value, []).append(request_id)
    finally:
        await producer.stop()
    return sent
