"""What every HTTP API of the platform shares: the error body, its statuses, clean text.

Every status an endpoint can answer is in its OpenAPI document (:func:`error_responses`), so
clients and the schemathesis conformance run see the same contract the code keeps. Text
fields refuse control characters (:func:`clean_text`): a NUL byte reached PostgreSQL as a
``DataError`` (HTTP 500) before; now it is the caller's 422.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

__all__ = [
    "NON_BLANK_NO_CONTROL_CHARACTERS",
    "NO_CONTROL_CHARACTERS",
    "CleanText",
    "ErrorBody",
    "FieldError",
    "clean_text",
    "error_responses",
]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: a stable ``error`` code and a sentence for people."""

    error: str = Field(description="Stable code: invalid_request, not_found, conflict, ...")
    message: str = Field(description="What went wrong, for people.")
    errors: list[FieldError] | None = Field(
        default=None, description="Per-field problems of a 422."
    )


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "No valid bearer token",
    403: "Authenticated, but not allowed",
    404: "Not found (or not yours: the same answer)",
    409: "Conflicts with the current state",
    413: "Request body too large",
    422: "Invalid parameters or body",
    503: "A dependency (database, broker) is unavailable; retry after Retry-After seconds",
}


def error_responses(*statuses: int, **overrides: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the :class:`ErrorBody` schema.

    ``overrides`` maps ``"s409"``-style keys to a more specific description.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = overrides.get(f"s{status}", _DESCRIPTIONS[status])
        entry: dict[str, Any] = {"model": ErrorBody, "description": description}
        if status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
        out[status] = entry
    return out


def clean_text(value: str, *, allow_newlines: bool = True) -> str:
    """``value`` unchanged, or ValueError if it holds control characters (NUL, ESC, ...).

    Tabs and (when allowed) newlines are text; every other Unicode control character is not,
    and PostgreSQL refuses NUL outright.
    """
    allowed = "\t\n\r" if allow_newlines else "\t"
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise ValueError("must not contain control characters")
    return value


#: Every Unicode control character (category Cc) but tab, newline and carriage return.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"

#: The same, and at least one character that is not white space (a message cannot be blank).
NON_BLANK_NO_CONTROL_CHARACTERS = (
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*"
    r"[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
    r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
)

#: A ``str`` field that refuses control characters (422 with a plain message, never a
#: database error); the pattern puts the same rule in the OpenAPI document, so clients (and
#: schemathesis) know it before they send.
CleanText = Annotated[
    str,
    AfterValidator(clean_text),
    Field(json_schema_extra={"pattern": NO_CONTROL_CHARACTERS}),
]
