"""HTTP API of the gateway.

``POST /v1/chat`` publishes a ``ChatRequested`` keyed by its request id and answers 202
(or 200 with the result when ``?wait=`` seconds were enough). ``GET /v1/requests/{id}`` gives
status, result and timeline; ``GET /v1/requests/{id}/events`` streams the same as
server-sent events until the request settles.
"""

import json
import time
import unicodedata
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette.sse import EventSourceResponse

from shared.contracts import MAX_MESSAGE_CHARS, ChatRequested, Topic
from shared.messaging import EventBus
from shared.principal import Principal, StaffLevel
from shared.telemetry import current_trace_id

from .progress import ProgressHub
from .repository import RequestRepository
from .status import SETTLED

__all__ = ["ChatBody", "build_router"]

_IDEMPOTENCY_NAMESPACE = uuid.UUID("1b7f0a64-41d4-4c49-9a2c-5b2a8f7c9e01")


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The question.")
    conversation_id: str | None = Field(default=None, max_length=128)
    channel: Literal["web", "chat", "email", "api"] = "api"

    @field_validator("message")
    @classmethod
    def _clean(cls, message: str) -> str:
        if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in message):
            raise ValueError("message contains control characters")
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
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["chat"])
    tracer = trace.get_tracer("gateway")
    Caller = Annotated[Principal, Depends(current_principal)]

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

    @router.post(
        "/chat",
        status_code=202,
        summary="Ask a question or request an action",
        responses={200: {"description": "Settled within ?wait="}, 401: {}, 413: {}, 422: {}},
    )
    async def post_chat(
        body: ChatBody,
        caller: Caller,
        wait: Annotated[
            float, Query(ge=0, le=60, description="Seconds to wait for the result.")
        ] = 0,
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> JSONResponse:
        request_id = (
            uuid.uuid5(
                _IDEMPOTENCY_NAMESPACE, f"{caller.tenant_id}:{caller.user_id}:{idempotency_key}"
            )
            if idempotency_key
            else uuid.uuid4()
        )
        with tracer.start_as_current_span(
            "chat.request",
            kind=trace.SpanKind.SERVER,
            attributes={
                "request_id": str(request_id),
                "tenant_id": caller.tenant_id,
                "gen_ai.conversation.id": body.conversation_id or "",
            },
        ):
            trace_id = current_trace_id()
            created = await repository().create(
                request_id=request_id,
                tenant_id=caller.tenant_id,
                user_id=caller.user_id,
                trace_id=trace_id,
            )
            if created:
                event = ChatRequested(
                    request_id=request_id,
                    tenant_id=caller.tenant_id,
                    principal=caller,
                    message=body.message,
                    channel=body.channel,
                    conversation_id=body.conversation_id,
                )
                await bus.publish(Topic.REQUEST, event)
                await bus.audit(
                    request_id=request_id,
                    tenant_id=caller.tenant_id,
                    action="request.accepted",
                    actor=caller.user_id,
                    subject_event_id=event.event_id,
                    details={"channel": body.channel, "chars": len(body.message)},
                )
        row = await _settled_view(request_id, min(wait, max_wait_s)) if wait > 0 else None
        if row is None:
            row = await repository().get(request_id)
        assert row is not None
        if row["user_id"] != caller.user_id or row["tenant_id"] != caller.tenant_id:
            # An idempotency key reused by another user must not reveal their request.
            raise HTTPException(409, {"message": "idempotency key already used"})
        view = _view(row)
        return JSONResponse(view, status_code=200 if row["status"] in SETTLED else 202)

    async def _readable(request_id: uuid.UUID, caller: Principal) -> dict[str, Any]:
        row = await repository().get(request_id)
        if row is None or not _may_read(row, caller):
            # Same answer for "absent" and "not yours": ids are not an oracle.
            raise HTTPException(404, {"message": f"request {request_id} not found"})
        return row

    @router.get("/requests/{request_id}", summary="Status, result and timeline of a request")
    async def get_request(request_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        row = await _readable(request_id, caller)
        view = _view(row)
        view["timeline"] = [_step(r) for r in await repository().timeline(request_id)]
        return view

    @router.get("/requests/{request_id}/events", summary="Server-sent events until settled")
    async def stream_request(request_id: uuid.UUID, caller: Caller) -> EventSourceResponse:
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
