"""Turning bytes from a topic into a validated event, or a precise reason why not.

Every consumer decodes through :func:`decode`; a :class:`DecodeError` sends the message to the
dead-letter topic with its ``reason`` (a stable code) and ``detail`` (human text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from .base import Event
from .events import AuditRecorded, ChatRequested, ContextRetrieved, DraftDecided, DraftProduced
from .topics import Topic

__all__ = ["EVENT_OF_TOPIC", "DecodeError", "Upcaster", "decode", "register_upcaster"]

E = TypeVar("E", bound=Event)

#: Which event each topic carries.
EVENT_OF_TOPIC: dict[Topic, type[Event]] = {
    Topic.REQUEST: ChatRequested,
    Topic.RETRIEVED: ContextRetrieved,
    Topic.DRAFT: DraftProduced,
    Topic.APPROVED: DraftDecided,
    Topic.AUDIT: AuditRecorded,
}

#: An upcaster turns the JSON of version N of an event into version N + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}

MAX_MESSAGE_BYTES = 1_000_000


def register_upcaster(event: type[Event], from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the step ``from_version`` → ``from_version + 1`` for ``event``."""

    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event.schema_name(), from_version)] = fn
        return fn

    return register


class DecodeError(Exception):
    """A message that no retry can fix; it belongs on the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(event_type: type[E], raw: bytes, schema_header: str | None = None) -> E:
    """Parse, upcast and validate ``raw`` as ``event_type``."""
    if schema_header is not None and schema_header != event_type.schema_name():
        raise DecodeError(
            "unknown_message_type",
            f"header schema={schema_header!r}, this topic carries {event_type.schema_name()}",
        )
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeError("too_large", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("malformed_json", str(exc)) from None
    if not isinstance(data, dict):
        raise DecodeError("malformed_json", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise DecodeError("missing_schema_version", "schema_version must be an integer")
    current = event_type.SCHEMA_VERSION
    if version > current or version < 1:
        raise DecodeError(
            "unknown_schema_version",
            f"{event_type.schema_name()} schema_version {version}"
            f" (this consumer knows 1..{current})",
        )
    while version < current:
        step = _UPCASTERS.get((event_type.schema_name(), version))
        if step is None:
            raise DecodeError(
                "unknown_schema_version",
                f"no upcaster for {event_type.schema_name()} v{version}",
            )
        data = step(data)
        version += 1
        data["schema_version"] = version
    try:
        return event_type.model_validate(data)
    except ValidationError as exc:
        raise DecodeError("invalid_fields", _summarise(exc)) from None


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
