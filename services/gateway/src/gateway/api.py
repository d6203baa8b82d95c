"""HTTP API of the gateway.

``POST /v1/chat`` publishes a ``ChatRequested`` keyed by its request id and answers 202
(or 200 with the result when ``?wait=`` seconds were enough). ``GET /v1/requests/{id}`` gives
status, result and timeline; ``GET /v1/requests/{id}/events`` streams the same as
server-sent events until the request settles.

An ``Idempotency-Key`` names one logical request of one user. A retry with it returns the
same request; after that request ended ``timed_out`` it starts a new attempt (a new request
id); while the earlier attempt was never published (the broker was down) it publishes that
same attempt again, with the same event ids, so consumers drop a duplicate. The same key with
another message is refused with 409. A publish waits at most ``publish_timeout_s``; then the
caller gets 503 with ``Retry-After``, never a 500.
"""

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from faststream.exceptions import IncorrectState
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette.sse import EventSourceResponse

from shared import log_context
from shared.contracts import MAX_MESSAGE_CHARS, ChatRequested, Topic, derive_event_id
from shared.http_api import NON_BLANK_NO_CONTROL_CHARACTERS, CleanText, error_responses
from shared.messaging import EventBus, is_transient
from shared.principal import Principal, StaffLevel
from shared.telemetry import current_trace_id

from .progress import ProgressHub
from .repository import Admission, AdmissionKind, RequestRepository
from .status import SETTLED, RequestStatus

__all__ = ["ChatBody", "build_router", "message_digest", "request_id_for"]

log = logging.getLogger(__name__)

_IDEMPOTENCY_NAMESPACE = uuid.UUID("1b7f0a64-41d4-4c49-9a2c-5b2a8f7c9e01")

#: How often a POST that found another caller publishing the same attempt looks again.
_PUBLISH_POLL_S = 0.05
#: Backoff between sends of one POST after a broker error (within ``publish_timeout_s``).
_RESEND_FIRST_S = 0.05
_RESEND_MAX_S = 1.0


def _broker_failure(exc: BaseException) -> bool:
    """An error of the broker or the way to it, not of the code: worth a resend, then a 503.

    aiokafka already retries what it marks retriable until ``request_timeout_ms``; what it
    raises is either that (a timeout, a connection error) or an error it does not retry."""
    return isinstance(exc, KafkaError) or is_transient(exc)


def request_id_for(tenant_id: str, user_id: str, idempotency_key: str, attempt: int) -> uuid.UUID:
    """The request id of attempt ``attempt`` of a user's key.

    Deterministic, so concurrent identical POSTs collide on one primary key. The first attempt
    keeps the id it always had (requests accepted before attempts existed keep theirs)."""
    name = f"{tenant_id}:{user_id}:{idempotency_key}"
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, name if attempt == 1 else f"{name}:{attempt}")


def message_digest(body: "ChatBody") -> str:
    """What must match for a retry to be the same request (JSON, so fields cannot run into
    each other)."""
    canonical = json.dumps(
        [body.message, body.conversation_id, body.channel],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: CleanText = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="The question.",
        # The rule the validator keeps, in the document: not blank, no control characters.
        json_schema_extra={"pattern": NON_BLANK_NO_CONTROL_CHARACTERS},
    )
    conversation_id: CleanText | None = Field(default=None, max_length=128)
    channel: Literal["web", "chat", "email", "api"] = "api"

    @field_validator("message")
    @classmethod
    def _not_blank(cls, message: str) -> str:
        if not message.strip():
            raise ValueError("message is blank")
        return message.strip()


def build_router(
    *,
    bus: EventBus,
    repository: Callable[[], RequestRepository],
    progress: ProgressHub,
    current_principal: Callable[..., Awaitable[Principal]],
    max_wait_s: float,
    sse_max_s: float,
    publish_timeout_s: float = 5.0,
    enduser_key: bytes = b"",
) -> APIRouter:
    """``enduser_key`` keys the pseudonymous ``enduser.id`` on the root span."""
    router = APIRouter(prefix="/v1", tags=["chat"])
    tracer = trace.get_tracer("gateway")
    Caller = Annotated[Principal, Depends(current_principal)]
    # The publish lease outlives the bounded publish plus recording it, so a slow but
    # successful publisher is not overtaken by a retry.
    claim_s = 2 * publish_timeout_s
    retry_after = str(max(1, math.ceil(publish_timeout_s)))

    def _unavailable(message: str) -> HTTPException:
        return HTTPException(
            503, {"error": "unavailable", "message": message}, headers={"Retry-After": retry_after}
        )

    async def _settled_view(request_id: uuid.UUID, wait_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait_s
        async with progress.watch(request_id, settled_only=True) as watch:
            while True:
                row = await repository().get(request_id)
                if row is not None and (row["status"] in SETTLED or time.monotonic() >= deadline):
                    return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return row
                await watch.changed(remaining)

    async def _publish(
        admission: Admission, body: ChatBody, caller: Principal, *, keyed: bool
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
            message=body.message,
            channel=body.channel,
            conversation_id=body.conversation_id,
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
                        await bus.publish(Topic.REQUEST, event)
                        request_sent = True
                    await bus.audit(
                        request_id=request_id,
                        tenant_id=caller.tenant_id,
                        action="request.accepted",
                        actor=caller.user_id,
                        subject_event_id=event.event_id,
                        details={
                            "channel": body.channel,
                            "chars": len(body.message),
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
            async with asyncio.timeout(publish_timeout_s):
                await send()
        except Exception as exc:
            try:
                # A retry with the key may publish at once instead of waiting for the lease.
                await repository().release_claim(request_id)
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
            raise _unavailable(
                "the message broker did not accept the request in time; retry later"
                + (" with the same Idempotency-Key" if keyed else "")
            ) from exc
        await repository().mark_published(request_id)
        log.info("chat request accepted (attempt %d, %s)", admission.attempt, body.channel)

    async def _await_publisher(request_id: uuid.UUID) -> None:
        """Another caller is publishing this attempt: wait for its outcome, bounded."""
        deadline = time.monotonic() + claim_s
        while time.monotonic() < deadline:
            row = await repository().get(request_id)
            if row is None:
                break
            if row["published_at"] is not None or row["status"] != RequestStatus.ACCEPTED:
                return
            if row["publish_claimed_until"] is None:
                break  # that publish failed: the broker is likely down
            await asyncio.sleep(_PUBLISH_POLL_S)
        raise _unavailable(
            "the message broker did not accept the request in time; retry later with the same"
            " Idempotency-Key"
        )

    @router.post(
        "/chat",
        status_code=202,
        summary="Ask a question or request an action",
        responses={
            200: {"description": "Settled within ?wait="},
            **error_responses(
                401,
                409,
                413,
                422,
                503,
                s409="Idempotency-Key already used with another message",
                s503="The message broker is unavailable; retry after Retry-After seconds",
            ),
        },
    )
    async def post_chat(
        body: ChatBody,
        caller: Caller,
        wait: Annotated[
            float, Query(ge=0, le=60, description="Seconds to wait for the result.")
        ] = 0,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        fresh_id = uuid.uuid4()

        def attempt_id(attempt: int) -> uuid.UUID:
            if idempotency_key:
                return request_id_for(caller.tenant_id, caller.user_id, idempotency_key, attempt)
            return fresh_id

        with tracer.start_as_current_span(
            "chat.request",
            kind=trace.SpanKind.SERVER,
            attributes={
                "tenant_id": caller.tenant_id,
                "gen_ai.conversation.id": body.conversation_id or "",
                "enduser.id": caller.pseudonym(enduser_key),
            },
        ) as span:
            admission = await repository().admit(
                tenant_id=caller.tenant_id,
                user_id=caller.user_id,
                trace_id=current_trace_id(),
                message_sha256=message_digest(body),
                idempotency_key=idempotency_key or None,
                attempt_id=attempt_id,
                claim_s=claim_s,
            )
            request_id = admission.request_id
            # From here on this HTTP request's lines (and its X-Request-ID) name the saga.
            log_context.bind(request_id=request_id)
            span.set_attribute("request_id", str(request_id))
            span.set_attribute("attempt", admission.attempt)
            if admission.kind is AdmissionKind.FOREIGN:
                # An idempotency key reused by another user must not reveal their request.
                raise HTTPException(409, {"message": "idempotency key already used"})
            if admission.kind is AdmissionKind.MISMATCH:
                raise HTTPException(
                    409,
                    {
                        "message": "this Idempotency-Key was already used with a different"
                        " message; use a new key for a new request"
                    },
                )
            if admission.kind in (AdmissionKind.NEW, AdmissionKind.REPUBLISH):
                await _publish(admission, body, caller, keyed=bool(idempotency_key))
            elif admission.kind is AdmissionKind.PUBLISHING:
                await _await_publisher(request_id)
        row = await _settled_view(request_id, min(wait, max_wait_s)) if wait > 0 else None
        if row is None:
            row = await repository().get(request_id)
        assert row is not None
        view = _view(row)
        return JSONResponse(view, status_code=200 if row["status"] in SETTLED else 202)

    async def _readable(request_id: uuid.UUID, caller: Principal) -> dict[str, Any]:
        row = await repository().get(request_id)
        if row is None or not _may_read(row, caller):
            # Same answer for "absent" and "not yours": ids are not an oracle.
            raise HTTPException(404, {"message": f"request {request_id} not found"})
        return row

    @router.get(
        "/requests/{request_id}",
        summary="Status, result and timeline of a request",
        responses=error_responses(401, 404, 422, 503),
    )
    async def get_request(request_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        log_context.bind(request_id=request_id)
        row = await _readable(request_id, caller)
        view = _view(row)
        view["timeline"] = [_step(r) for r in await repository().timeline(request_id)]
        return view

    @router.get(
        "/requests/{request_id}/events",
        summary="Server-sent events until settled",
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "`step` events as the saga moves, then one `result` (or"
                " `timeout` after the stream's limit)",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **error_responses(401, 404, 422, 503),
        },
    )
    async def stream_request(request_id: uuid.UUID, caller: Caller) -> EventSourceResponse:
        log_context.bind(request_id=request_id)
        await _readable(request_id, caller)

        async def events() -> AsyncIterator[dict[str, str]]:
            sent: set[str] = set()
            since: datetime | None = None
            deadline = time.monotonic() + sse_max_s
            async with progress.watch(request_id) as watch:
                while time.monotonic() < deadline:
                    for step in await repository().timeline(request_id, since):
                        key = str(step["event_id"])
                        if key not in sent:
                            sent.add(key)
                            since = step["at"]
                            yield {"event": "step", "id": key, "data": json.dumps(_step(step))}
                    row = await repository().get(request_id)
                    if row is not None and row["status"] in SETTLED:
                        yield {"event": "result", "data": json.dumps(_view(row))}
                        return
                    await watch.changed(max(0.0, deadline - time.monotonic()))
                yield {"event": "timeout", "data": json.dumps({"request_id": str(request_id)})}

        return EventSourceResponse(events(), ping=15)

    return router


def _may_read(row: dict[str, Any], caller: Principal) -> bool:
    if row["tenant_id"] != caller.tenant_id:
        return False
    return row["user_id"] == caller.user_id or caller.level.at_least(StaffLevel.L2)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    request_id = str(row["request_id"])
    return {
        "request_id": request_id,
        "status": row["status"],
        "settled": row["status"] in SETTLED,
        "trace_id": row["trace_id"],
        "result": row["result"],
        # Where the saga stalled when it timed out (None otherwise), and which attempt of its
        # Idempotency-Key this request is.
        "stalled_at": row.get("stalled_at"),
        "attempt": row.get("attempt", 1),
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "links": {
            "self": f"/v1/requests/{request_id}",
            "events": f"/v1/requests/{request_id}/events",
        },
    }


def _step(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": row["at"].isoformat(),
        "service": row["service"],
        "action": row["action"],
        "outcome": row["outcome"],
        "details": row["details"],
    }
