"""Accepting a chat and following it to its end: the gateway's service layer.

``POST /v1/chat`` and ``GET /v1/requests/...`` (``api.py``) only translate HTTP to these
functions and their refusals (:class:`ChatRefused`, a :class:`Problem` code) to statuses.

An ``Idempotency-Key`` names one logical request of one user. A retry with it returns the
same request; after that request ended ``timed_out`` it starts a new attempt (a new request
id); while the earlier attempt was never published (the broker was down) it publishes that
same attempt again, with the same event ids, so consumers drop a duplicate. The same key with
another message is refused. A publish waits at most ``publish_timeout_s``; then the caller is
told the broker is unavailable, never an internal error.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka.errors import KafkaError
from faststream.exceptions import IncorrectState
from opentelemetry import trace

from shared import log_context
from shared.contracts import ChatRequested, Topic, derive_event_id
from shared.messaging import EventPublisher, is_transient
from shared.principal import Principal, StaffLevel
from shared.telemetry import current_trace_id

from .progress import ProgressHub
from .records import Admission, AdmissionKind, RequestRecord, Step
from .status import RequestStatus
from .store import RequestStore

__all__ = ["Chat", "ChatDesk", "ChatRefused", "Problem", "message_digest", "request_id_for"]

log = logging.getLogger(__name__)

_IDEMPOTENCY_NAMESPACE = uuid.UUID("1b7f0a64-41d4-4c49-9a2c-5b2a8f7c9e01")

#: How often a POST that found another caller publishing the same attempt looks again.
_PUBLISH_POLL_S = 0.05
#: Backoff between sends of one POST after a broker error (within ``publish_timeout_s``).
_RESEND_FIRST_S = 0.05
_RESEND_MAX_S = 1.0


class Problem(enum.StrEnum):
    """Why a chat was refused or cannot be shown; the API picks the HTTP status."""

    #: The key's request belongs to another user: say nothing more about it.
    KEY_OF_ANOTHER_USER = "key_of_another_user"
    KEY_REUSED = "key_reused"
    BROKER_UNAVAILABLE = "broker_unavailable"
    NOT_FOUND = "not_found"


class ChatRefused(Exception):
    """A refusal whose message is safe to show the caller."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class Chat:
    """What a caller asked, as validated by the entry point."""

    message: str
    conversation_id: str | None = None
    channel: str = "api"


def request_id_for(tenant_id: str, user_id: str, idempotency_key: str, attempt: int) -> uuid.UUID:
    """The request id of attempt ``attempt`` of a user's key.

    Deterministic, so concurrent identical POSTs collide on one primary key. The first attempt
    keeps the id it always had (requests accepted before attempts existed keep theirs)."""
    name = f"{tenant_id}:{user_id}:{idempotency_key}"
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name if attempt == 1 else f"{name}:{attempt}")


def message_digest(chat: Chat) -> str:
    """What must match for a retry to be the same request (JSON, so fields cannot run into
    each other)."""
    canonical = json.dumps(
        [chat.message, chat.conversation_id, chat.channel],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _broker_failure(exc: BaseException) -> bool:
    """An error of the broker or the way to it, not of the code: worth a resend, then a 503.

    aiokafka already retries what it marks retriable until ``request_timeout_ms``; what it
    raises is either that (a timeout, a connection error) or an error it does not retry."""
    return isinstance(exc, KafkaError) or is_transient(exc)


def may_read(record: RequestRecord, caller: Principal) -> bool:
    """The requester reads their own requests; L2 staff read their tenant's."""
    if record.tenant_id != caller.tenant_id:
        return False
    return record.user_id == caller.user_id or caller.level.at_least(StaffLevel.L2)


class ChatDesk:
    def __init__(
        self,
        *,
        bus: EventPublisher,
        store: Callable[[], RequestStore],
        progress: ProgressHub,
        publish_timeout_s: float = 5.0,
        enduser_key: bytes = b"",
    ) -> None:
        """``enduser_key`` keys the pseudonymous ``enduser.id`` on the root span."""
        self._bus = bus
        self._store = store
        self._progress = progress
        self.publish_timeout_s = publish_timeout_s
        self._enduser_key = enduser_key
        self._tracer = trace.get_tracer("gateway")
        # The publish lease outlives the bounded publish plus recording it, so a slow but
        # successful publisher is not overtaken by a retry.
        self._claim_s = 2 * publish_timeout_s

    # ------------------------------------------------------------------ accepting
    async def accept(
        self, chat: Chat, caller: Principal, idempotency_key: str | None = None
    ) -> uuid.UUID:
        """Admit the chat and publish it (unless an earlier attempt stands); its request id."""
        fresh_id = uuid.uuid4()

        def attempt_id(attempt: int) -> uuid.UUID:
            if idempotency_key:
                return request_id_for(caller.tenant_id, caller.user_id, idempotency_key, attempt)
            return fresh_id

        with self._tracer.start_as_current_span(
            "chat.request",
            kind=trace.SpanKind.SERVER,
            attributes={
                "tenant_id": caller.tenant_id,
                "gen_ai.conversation.id": chat.conversation_id or "",
                "enduser.id": caller.pseudonym(self._enduser_key),
            },
        ) as span:
            admission = await self._store().admit(
                tenant_id=caller.tenant_id,
                user_id=caller.user_id,
                trace_id=current_trace_id(),
                message_sha256=message_digest(chat),
                idempotency_key=idempotency_key or None,
                attempt_id=attempt_id,
                claim_s=self._claim_s,
            )
            span.set_attribute("request_id", str(admission.request_id))
            span.set_attribute("attempt", admission.attempt)
            if admission.kind is AdmissionKind.FOREIGN:
                # An idempotency key reused by another user must not reveal their request.
                raise ChatRefused(Problem.KEY_OF_ANOTHER_USER, "idempotency key already used")
            if admission.kind is AdmissionKind.MISMATCH:
                raise ChatRefused(
                    Problem.KEY_REUSED,
                    "this Idempotency-Key was already used with a different message;"
                    " use a new key for a new request",
                )
            # From here on this HTTP request's lines (and its X-Request-ID) name the saga;
            # not before the check above, which keeps another user's request id unrevealed.
            log_context.bind(request_id=admission.request_id)
            if admission.kind in (AdmissionKind.NEW, AdmissionKind.REPUBLISH):
                await self._publish(admission, chat, caller, keyed=bool(idempotency_key))
            elif admission.kind is AdmissionKind.PUBLISHING:
                await self._await_publisher(admission.request_id)
        return admission.request_id

    async def _publish(
        self, admission: Admission, chat: Chat, caller: Principal, *, keyed: bool
    ) -> None:
        """Publish the attempt and its audit step within the timeout, then record that.

        Both event ids derive from the request id, so publishing an attempt again (after a
        failed or unrecorded publish) produces duplicates that consumers and the auditor drop.
        """
        request_id = admission.request_id
        event = ChatRequested(
            event_id=derive_event_id(request_id, "chat.requested"),
            request_id=request_id,
            tenant_id=caller.tenant_id,
            occurred_at=admission.created_at,
            principal=caller,
            message=chat.message,
            channel=chat.channel,
            conversation_id=chat.conversation_id,
        )
        failures: list[BaseException] = []

        async def send() -> None:
            # A failed send is tried again within the budget: a broker blip (a leader moving,
            # a node restarting and refusing its first produce requests) costs the caller a
            # little latency rather than a 503. Re-sending is safe, the event ids are fixed.
            backoff_s = _RESEND_FIRST_S
            request_sent = False
            while True:
                try:
                    if not request_sent:
                        await self._bus.publish(Topic.REQUEST, event)
                        request_sent = True
                    await self._bus.audit(
                        request_id=request_id,
                        tenant_id=caller.tenant_id,
                        action="request.accepted",
                        actor=caller.user_id,
                        subject_event_id=event.event_id,
                        details={
                            "channel": chat.channel,
                            "chars": len(chat.message),
                            "attempt": admission.attempt,
                        },
                    )
                except Exception as exc:
                    if not _broker_failure(exc):
                        raise
                    failures.append(exc)
                else:
                    return
                await asyncio.sleep(backoff_s)
                backoff_s = min(2 * backoff_s, _RESEND_MAX_S)

        try:
            # aiokafka keeps retrying a dead broker until request_timeout_ms (40 s by default):
            # the caller learns within the bound instead, and may retry with its key.
            async with asyncio.timeout(self.publish_timeout_s):
                await send()
        except Exception as exc:
            try:
                # A retry with the key may publish at once instead of waiting for the lease.
                await self._store().release_claim(request_id)
            except Exception as db_exc:
                # The lease then simply runs out (claim_s); the caller's answer is the same.
                log.warning("releasing the publish lease of %s failed: %r", request_id, db_exc)
            if not (isinstance(exc, TimeoutError | IncorrectState) or _broker_failure(exc)):
                raise  # a bug, not an outage: a 500 that shows up in the error budget
            log.warning(
                "publishing request %s failed: %r (%d failed sends, last: %r)",
                request_id,
                exc,
                len(failures),
                failures[-1] if failures else None,
            )
            raise ChatRefused(
                Problem.BROKER_UNAVAILABLE,
                "the message broker did not accept the request in time; retry later"
                + (" with the same Idempotency-Key" if keyed else ""),
            ) from exc
        await self._store().mark_published(request_id)
        log.info("chat request accepted (attempt %d, %s)", admission.attempt, chat.channel)

    async def _await_publisher(self, request_id: uuid.UUID) -> None:
        """Another caller is publishing this attempt: wait for its outcome, bounded."""
        deadline = time.monotonic() + self._claim_s
        while time.monotonic() < deadline:
            record = await self._store().get(request_id)
            if record is None:
                break
            if record.published_at is not None or record.status is not RequestStatus.ACCEPTED:
                return
            if record.publish_claimed_until is None:
                break  # that publish failed: the broker is likely down
            await asyncio.sleep(_PUBLISH_POLL_S)
        raise ChatRefused(
            Problem.BROKER_UNAVAILABLE,
            "the message broker did not accept the request in time; retry later with the same"
            " Idempotency-Key",
        )

    # ------------------------------------------------------------------ following
    async def result(self, request_id: uuid.UUID, wait_s: float = 0.0) -> RequestRecord:
        """The request as it stands once settled, or when ``wait_s`` ran out."""
        deadline = time.monotonic() + wait_s
        async with self._progress.watch(request_id, settled_only=True) as watch:
            while True:
                record = await self._store().get(request_id)
                if record is None:
                    raise ChatRefused(Problem.NOT_FOUND, f"request {request_id} not found")
                remaining = deadline - time.monotonic()
                if record.settled or remaining <= 0:
                    return record
                await watch.changed(remaining)

    async def readable(self, request_id: uuid.UUID, caller: Principal) -> RequestRecord:
        record = await self._store().get(request_id)
        if record is None or not may_read(record, caller):
            # Same answer for "absent" and "not yours": ids are not an oracle.
            raise ChatRefused(Problem.NOT_FOUND, f"request {request_id} not found")
        return record

    async def timeline(self, request_id: uuid.UUID) -> list[Step]:
        return await self._store().timeline(request_id)

    async def follow(
        self, request_id: uuid.UUID, max_s: float
    ) -> AsyncIterator[Step | RequestRecord | None]:
        """Each new step as it is recorded, then the settled request; None when ``max_s`` ran
        out first. The caller has checked that the request is theirs to read."""
        sent: set[uuid.UUID] = set()
        since: datetime | None = None
        deadline = time.monotonic() + max_s
        async with self._progress.watch(request_id) as watch:
            while time.monotonic() < deadline:
                for step in await self._store().timeline(request_id, since):
                    if step.event_id not in sent:
                        sent.add(step.event_id)
                        since = step.at
                        yield step
                record = await self._store().get(request_id)
                if record is not None and record.settled:
                    yield record
                    return
                await watch.changed(max(0.0, deadline - time.monotonic()))
        yield None
