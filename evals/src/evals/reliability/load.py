"""An open-loop load generator that behaves like a careful client of the gateway.

Requests start at a fixed rate whatever happens to earlier ones (open loop: a slow platform
is not hidden by a client that slows down with it). Each carries an ``Idempotency-Key`` and
``?wait=``; when a gateway replica is gone (connection refused, reset, 502/503) the client
retries the same key on the next replica with a short backoff, as the README tells clients to,
so a request is never submitted twice as two requests. What comes back is recorded per
request: when it was sent, when it settled and how, how many attempts it took.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["TERMINAL", "Ask", "LoadGenerator", "Outcome"]

#: Statuses that end a request for its caller (pending_approval waits on a person, whose
#: approval then has its own expiry).
TERMINAL = frozenset(
    {
        "answered",
        "refused",
        "pending_approval",
        "executed",
        "failed",
        "rejected",
        "expired",
        "timed_out",
    }
)
_RETRYABLE = {429, 502, 503, 504}


@dataclass(frozen=True)
class Ask:
    """One request to make: who asks what."""

    token: str
    message: str
    kind: str = "question"  # question, action, adversarial, ... (for the report only)


@dataclass
class Outcome:
    ask: Ask
    key: str
    sent_at: float
    phase: str
    request_id: str | None = None
    status: str | None = None
    #: Seconds from the first send until the gateway answered with a settled result.
    latency_s: float | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None

    @property
    def accepted(self) -> bool:
        return self.request_id is not None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class LoadGenerator:
    def __init__(
        self,
        gateways: Sequence[str],
        *,
        wait_s: float = 15.0,
        submit_deadline_s: float = 90.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._gateways = list(gateways)
        self._next = itertools.cycle(range(len(self._gateways)))
        self._wait_s = wait_s
        self._submit_deadline_s = submit_deadline_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self.outcomes: list[Outcome] = []

    async def close(self) -> None:
        await self._client.aclose()

    async def run(
        self,
        asks: Callable[[int], Ask],
        *,
        rate: float,
        duration_s: float,
        phase: str,
        stop: asyncio.Event | None = None,
    ) -> list[Outcome]:
        """Start ``rate`` requests a second for ``duration_s`` (or until ``stop`` is set);
        return when every one of them has been answered."""
        started = time.monotonic()
        tasks: list[asyncio.Task[Outcome]] = []
        for i in itertools.count():
            due = started + i / rate
            if due - started >= duration_s or (stop is not None and stop.is_set()):
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(self.submit(asks(i), phase=phase)))
        return list(await asyncio.gather(*tasks))

    async def submit(self, ask: Ask, *, phase: str) -> Outcome:
        outcome = Outcome(ask=ask, key=str(uuid.uuid4()), sent_at=time.monotonic(), phase=phase)
        self.outcomes.append(outcome)
        headers = {"Authorization": f"Bearer {ask.token}", "Idempotency-Key": outcome.key}
        backoff = 0.2
        deadline = outcome.sent_at + self._submit_deadline_s
        while True:
            outcome.attempts += 1
            url = self._gateways[next(self._next)]
            try:
                response = await self._client.post(
                    f"{url}/v1/chat",
                    params={"wait": self._wait_s},
                    json={"message": ask.message},
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                outcome.errors.append(type(exc).__name__)
            else:
                if response.status_code in (200, 202):
                    body = response.json()
                    outcome.request_id = body["request_id"]
                    outcome.status = body["status"]
                    if response.status_code == 200:
                        outcome.latency_s = time.monotonic() - outcome.sent_at
                        outcome.result = body.get("result")
                    return outcome
                outcome.errors.append(str(response.status_code))
                if response.status_code not in _RETRYABLE:
                    outcome.status = f"http_{response.status_code}"
                    return outcome
            if time.monotonic() + backoff > deadline:
                outcome.status = "not_accepted"
                return outcome
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 3.0)

    async def settle(self, outcomes: Sequence[Outcome], *, deadline_s: float) -> None:
        """Follow every accepted, unsettled request until it ends or ``deadline_s`` passes."""
        deadline = time.monotonic() + deadline_s
        pending = [o for o in outcomes if o.accepted and not o.terminal]
        while pending and time.monotonic() < deadline:
            for outcome in pending:
                await self._refresh(outcome)
            pending = [o for o in pending if not o.terminal]
            if pending:
                await asyncio.sleep(1.0)

    async def _refresh(self, outcome: Outcome) -> None:
        headers = {"Authorization": f"Bearer {outcome.ask.token}"}
        for url in self._gateways:
            try:
                response = await self._client.get(
                    f"{url}/v1/requests/{outcome.request_id}", headers=headers
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                body = response.json()
                outcome.status = body["status"]
                outcome.result = body.get("result")
                return
