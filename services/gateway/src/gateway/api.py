"""HTTP API of the gateway: translates HTTP to :mod:`gateway.chats` and back.

``POST /v1/chat`` accepts a chat and answers 202 (or 200 with the result when ``?wait=``
seconds were enough). ``GET /v1/requests/{id}`` gives status, result and timeline;
``GET /v1/requests/{id}/events`` streams the same as server-sent events until the request
settles. Refusals of the service layer become 4xx (409 for a reused Idempotency-Key, 404
for a request that is not the caller's) or 503 with ``Retry-After`` when the broker is
unavailable; never a 500.
"""

import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette.sse import EventSourceResponse

from shared import log_context
from shared.contracts import MAX_MESSAGE_CHARS
from shared.http_api import NON_BLANK_NO_CONTROL_CHARACTERS, CleanText, error_responses
from shared.principal import Principal

from .chats import Chat, ChatDesk, ChatRefused, Problem, request_id_for
from .records import RequestRecord, Step

__all__ = ["ChatBody", "build_router", "request_id_for"]

STATUS_OF: dict[Problem, int] = {
    Problem.KEY_OF_ANOTHER_USER: 409,
    Problem.KEY_REUSED: 409,
    Problem.BROKER_UNAVAILABLE: 503,
    Problem.NOT_FOUND: 404,
}


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
    desk: ChatDesk,
    current_principal: Callable[..., Awaitable[Principal]],
    max_wait_s: float,
    sse_max_s: float,
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["chat"])
    Caller = Annotated[Principal, Depends(current_principal)]
    retry_after = str(max(1, math.ceil(desk.publish_timeout_s)))

    def http_error(exc: ChatRefused) -> HTTPException:
        if exc.problem is Problem.BROKER_UNAVAILABLE:
            return HTTPException(
                503,
                {"error": "unavailable", "message": exc.message},
                headers={"Retry-After": retry_after},
            )
        return HTTPException(STATUS_OF[exc.problem], {"message": exc.message})

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
        chat = Chat(body.message, body.conversation_id, body.channel)
        try:
            request_id = await desk.accept(chat, caller, idempotency_key)
            record = await desk.result(request_id, min(wait, max_wait_s))
        except ChatRefused as exc:
            raise http_error(exc) from exc
        return JSONResponse(_view(record), status_code=200 if record.settled else 202)

    async def readable(request_id: uuid.UUID, caller: Principal) -> RequestRecord:
        try:
            return await desk.readable(request_id, caller)
        except ChatRefused as exc:
            raise http_error(exc) from None

    @router.get(
        "/requests/{request_id}",
        summary="Status, result and timeline of a request",
        responses=error_responses(401, 404, 422, 503),
    )
    async def get_request(request_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
        log_context.bind(request_id=request_id)
        view = _view(await readable(request_id, caller))
        view["timeline"] = [_step(s) for s in await desk.timeline(request_id)]
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
        await readable(request_id, caller)

        async def events() -> AsyncIterator[dict[str, str]]:
            async for item in desk.follow(request_id, sse_max_s):
                if isinstance(item, Step):
                    data = json.dumps(_step(item))
                    yield {"event": "step", "id": str(item.event_id), "data": data}
                elif isinstance(item, RequestRecord):
                    yield {"event": "result", "data": json.dumps(_view(item))}
                else:
                    body = json.dumps({"request_id": str(request_id)})
                    yield {"event": "timeout", "data": body}

        return EventSourceResponse(events(), ping=15)

    return router


def _view(record: RequestRecord) -> dict[str, Any]:
    request_id = str(record.request_id)
    return {
        "request_id": request_id,
        "status": record.status.value,
        "settled": record.settled,
        "trace_id": record.trace_id,
        "result": record.result,
        # Where the saga stalled when it timed out (None otherwise), and which attempt of its
        # Idempotency-Key this request is.
        "stalled_at": record.stalled_at,
        "attempt": record.attempt,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "links": {
            "self": f"/v1/requests/{request_id}",
            "events": f"/v1/requests/{request_id}/events",
        },
    }


def _step(step: Step) -> dict[str, Any]:
    return {
        "at": step.at.isoformat(),
        "service": step.service,
        "action": step.action,
        "outcome": step.outcome,
        "details": step.details,
    }
