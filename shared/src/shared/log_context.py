"""Which saga, tenant and service a log line belongs to, wherever in the code it is written.

The edges open a scope: :class:`EventBus` for every consumed message (``shared.messaging``),
:class:`LogContextMiddleware` for every HTTP request. Code inside the scope says what it learns
on the way with :func:`bind` (the gateway knows a chat's request id only once it has admitted
it; the caller's tenant is known once the bearer token is verified). :class:`ContextFilter` then
copies ``service``, ``request_id`` and ``tenant_id`` from the scope, and ``trace_id`` /
``span_id`` from the current OpenTelemetry span, onto every record, so one ``request_id`` finds
the saga in every service's log and its ``trace_id`` opens the trace.

A scope holds one mutable record rather than one context variable per field: FastAPI runs
dependencies and sync endpoints in copies of the request's context (a thread pool, an anyio
task group), and a value set in a copy would not reach the lines written after it returns.
Work started inside a scope (tasks, threads) shares the record; work started outside any scope
(start-up, background loops) has none, and its lines carry only the service.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_HEADER",
    "ContextFilter",
    "LogContext",
    "LogContextMiddleware",
    "bind",
    "current",
    "of_request",
    "resumed",
    "scope",
]

#: The HTTP header that carries a request id in (from a proxy or a client) and out.
REQUEST_ID_HEADER = "x-request-id"

_ASGI_KEY = "shared.log_context"

#: Tenant ids from headers are untrusted text: only this shape reaches a log line.
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass
class LogContext:
    service: str | None = None
    request_id: str | None = None
    tenant_id: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("log_context", default=None)


def current() -> LogContext | None:
    """The scope the running code is in, or None outside any message or request."""
    return _current.get()


@contextmanager
def scope(
    *,
    service: str | None = None,
    request_id: uuid.UUID | str | None = None,
    tenant_id: str | None = None,
) -> Iterator[LogContext]:
    """A fresh context for handling one message or one HTTP request."""
    context = LogContext(service, _request_id(request_id), _tenant(tenant_id))
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextmanager
def resumed(context: LogContext | None) -> Iterator[None]:
    """Enter a scope again after it was left (None: stay where we are).

    For an error handler that runs after the request's middleware has unwound: Starlette
    calls the 500 handler from its outermost middleware, outside every other one.
    """
    if context is None:
        yield
        return
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def of_request(asgi_scope: Scope) -> LogContext | None:
    """The log scope :class:`LogContextMiddleware` opened for this ASGI request."""
    found = asgi_scope.get(_ASGI_KEY)
    return found if isinstance(found, LogContext) else None


def bind(*, request_id: uuid.UUID | str | None = None, tenant_id: str | None = None) -> None:
    """Record what the current message or request turned out to be about.

    Outside a scope this does nothing: a background loop must not stamp the ids of whatever it
    touched last onto all its later lines. Values that are not a UUID (request id) or a plain
    tenant name are ignored, so header contents cannot forge or garble a line.
    """
    context = _current.get()
    if context is None:
        return
    if (rid := _request_id(request_id)) is not None:
        context.request_id = rid
    if (tenant := _tenant(tenant_id)) is not None:
        context.tenant_id = tenant


def _request_id(value: uuid.UUID | str | None) -> str | None:
    if value is None or isinstance(value, uuid.UUID):
        return None if value is None else str(value)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _tenant(value: str | None) -> str | None:
    return value if value is not None and _TENANT.match(value) else None


class ContextFilter(logging.Filter):
    """Put ``service``, ``request_id``, ``tenant_id``, ``trace_id`` and ``span_id`` on a record.

    Installed on the one handler after redaction, so the ids are never taken for personal
    data. ``service`` is the scope's (several services may share a test process) or else
    this process's.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        context = _current.get()
        record.service = (context and context.service) or self._service
        record.request_id = context.request_id if context else None
        record.tenant_id = context.tenant_id if context else None
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else None
        record.span_id = format(span.span_id, "016x") if span.is_valid else None
        return True


class TextFormatter(logging.Formatter):
    """One readable line for a terminal, the ids that are set appended as ``key=value``."""

    _IDS = ("request_id", "tenant_id", "trace_id")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = " ".join(
            f"{key}={value}" for key in self._IDS if (value := getattr(record, key, None))
        )
        return f"{line} [{ids}]" if ids else line


class LogContextMiddleware:
    """Open a log scope per HTTP request and answer its request id in ``X-Request-ID``.

    The id starts as the caller's ``X-Request-ID`` when that is a UUID (nginx's ``$request_id``
    is one, without dashes), else a fresh one; an endpoint that serves a saga binds the saga's
    id instead, and the response carries whichever id the lines were written with.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope_: Scope, receive: Receive, send: Send) -> None:
        if scope_["type"] != "http":
            await self.app(scope_, receive, send)
            return
        given = dict(scope_.get("headers") or []).get(REQUEST_ID_HEADER.encode())
        incoming = _request_id(given.decode("latin-1")) if given else None
        with scope(service=self.service, request_id=incoming or uuid.uuid4()) as context:
            scope_[_ASGI_KEY] = context  # for the 500 handler, which runs outside this scope

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start" and context.request_id:
                    headers = [
                        (k, v)
                        for k, v in message.get("headers", [])
                        if k.lower() != REQUEST_ID_HEADER.encode()
                    ]
                    headers.append((REQUEST_ID_HEADER.encode(), context.request_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope_, receive, send_with_id)
