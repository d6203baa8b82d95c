"""The expectation table and the reconciliation of one request, on synthetic rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from auditor.completeness import _reconcile
from auditor.expectations import CHECKED_STATUSES, Origin, Step, check_saga, paths_for

from .paths import (
    ACCEPTED,
    APPROVED,
    AUTO,
    CHAT_ACTION,
    CHAT_ANSWER,
    CHAT_BLOCKED,
    MCP_ACTION,
    PENDING,
)

pytestmark = pytest.mark.unit


def pairs(steps: Sequence[str]) -> set[tuple[str, str]]:
    return {(s.split(":")[0], s.split(":")[1]) for s in steps}


COMPLETE: list[tuple[str, Origin, list[str]]] = [
    ("answered", Origin.GATEWAY, [*ACCEPTED, *CHAT_ANSWER, *AUTO]),
    ("answered", Origin.OTHER, [*CHAT_ANSWER, *AUTO]),
    ("refused", Origin.GATEWAY, [*ACCEPTED, *CHAT_ANSWER, *AUTO]),
    ("refused", Origin.GATEWAY, [*ACCEPTED, *CHAT_BLOCKED, *AUTO]),
    ("pending_approval", Origin.GATEWAY, [*ACCEPTED, *CHAT_ACTION, *PENDING]),
    ("pending_approval", Origin.OTHER, [*MCP_ACTION, *PENDING]),
    ("approved", Origin.OTHER, [*CHAT_ACTION, *APPROVED]),
    (
        "executed",
        Origin.GATEWAY,
        [*ACCEPTED, *CHAT_ACTION, *APPROVED, "approver:approval.executed"],
    ),
    ("executed", Origin.OTHER, [*MCP_ACTION, *APPROVED, "approver:approval.executed"]),
    ("rejected", Origin.GATEWAY, [*ACCEPTED, *CHAT_ACTION, "approver:approval.rejected"]),
    (
        "rejected",
        Origin.OTHER,
        [*CHAT_ACTION, *PENDING, "approver:approval.signed", "approver:approval.rejected"],
    ),
    ("expired", Origin.OTHER, [*MCP_ACTION, *PENDING, "approver:approval.expired"]),
    ("failed", Origin.GATEWAY, [*ACCEPTED, *CHAT_ACTION, *APPROVED, "approver:approval.failed"]),
    ("failed", Origin.GATEWAY, [*ACCEPTED, "retriever:dlq.routed"]),
    ("failed", Origin.OTHER, ["auditor:dlq.routed"]),
    ("timed_out", Origin.GATEWAY, [*ACCEPTED, "gateway:request.timed_out"]),
    ("timed_out", Origin.OTHER, ["gateway:request.timed_out"]),
]


@pytest.mark.parametrize(("status", "origin", "steps"), COMPLETE)
def test_every_path_is_complete_with_its_own_steps(
    status: str, origin: Origin, steps: list[str]
) -> None:
    verdict = check_saga(status, origin, pairs(steps))
    assert verdict is not None
    assert verdict.complete, (verdict.path, [str(s) for s in verdict.missing])


@pytest.mark.parametrize(("status", "origin", "steps"), COMPLETE)
def test_every_required_step_is_missed_when_absent(
    status: str, origin: Origin, steps: list[str]
) -> None:
    """Each step of each path is required: without it the saga is incomplete, naming it.

    (Unless another path to the same status fits without it, as a refusal fits both
    chat-answer and chat-blocked: then the step was not required after all.)"""
    for step in sorted(set(steps)):
        rest = pairs(steps) - pairs([step])
        verdict = check_saga(status, origin, rest, witnessed=pairs(steps))
        assert verdict is not None
        assert len(verdict.missing) == 1, (status, step, verdict)
        assert verdict.missing[0].matches(*step.split(":")), (status, step, verdict)


def test_optional_and_repeated_steps_do_not_matter() -> None:
    extra = [
        "agent:model.fallback",
        "agent:tool.executed",
        "approver:approval.denied",
        "gateway:request.timed_out",
    ]
    verdict = check_saga("answered", Origin.OTHER, pairs([*CHAT_ANSWER, *AUTO, *extra]))
    assert verdict is not None and verdict.complete


def test_a_settled_request_without_any_row_misses_its_whole_path() -> None:
    """The incident: answered, shown as done, no audit rows at all."""
    verdict = check_saga("answered", Origin.GATEWAY, set())
    assert verdict is not None
    assert [str(s) for s in verdict.missing] == [*ACCEPTED, *CHAT_ANSWER, *AUTO]


def test_the_witnessed_steps_choose_the_path() -> None:
    # Refused after a full answer attempt; the auditor lost the agent's guardrail steps, the
    # gateway's timeline saw them: the report names them, not the blocked path's steps.
    logged = pairs([*CHAT_ANSWER, *AUTO]) - pairs(["agent:guardrail.citations"])
    verdict = check_saga("refused", Origin.OTHER, logged, witnessed=pairs([*CHAT_ANSWER, *AUTO]))
    assert verdict is not None
    assert verdict.path == "chat-answer/auto-approved"
    assert verdict.missing == (Step("agent", "guardrail.citations"),)


def test_an_execution_failure_is_told_from_a_dead_letter() -> None:
    steps = pairs([*CHAT_ACTION, *APPROVED])  # neither approval.failed nor dlq.routed
    verdict = check_saga("failed", Origin.OTHER, steps)
    assert verdict is not None
    assert verdict.missing == (Step("approver", "approval.failed"),)


def test_dead_letters_from_any_service_count() -> None:
    assert Step(None, "dlq.routed").matches("agent", "dlq.routed")
    assert str(Step(None, "dlq.routed")) == "*:dlq.routed"


def test_mcp_calls_never_come_through_the_gateway() -> None:
    names = {p.name for p in paths_for("executed", Origin.GATEWAY)}
    assert names == {"chat-action/executed"}
    assert "mcp-action/executed" in {p.name for p in paths_for("executed", Origin.OTHER)}


def test_requests_in_flight_are_not_checked() -> None:
    for status in ("accepted", "retrieved", "drafted", "something-new"):
        assert check_saga(status, Origin.GATEWAY, set()) is None


def test_checked_statuses_are_the_settled_ones() -> None:
    # The gateway's terminal statuses plus those settled for now (waiting for a person or the
    # executor). A status added to the gateway must be added to the table.
    assert set(CHECKED_STATUSES) == {
        "answered",
        "refused",
        "executed",
        "rejected",
        "expired",
        "failed",
        "timed_out",
        "pending_approval",
        "approved",
    }


# --------------------------------------------------------------------- one row of the query


def row(status: str, logged: Sequence[str], projected: Sequence[str] = (), **kw: Any) -> Any:
    return {
        "request_id": uuid.UUID(int=7),
        "status": status,
        "updated_at": datetime(2026, 11, 26, tzinfo=UTC),
        "admitted": kw.get("admitted", False),
        "logged": [s.split(":") for s in logged],
        "projected": [s.split(":") for s in projected],
    }


def test_reconcile_a_complete_row() -> None:
    assert _reconcile(row("answered", [*ACCEPTED, *CHAT_ANSWER, *AUTO], admitted=True)) is None


def test_an_admitted_request_must_show_its_acceptance() -> None:
    saga = _reconcile(row("answered", [*CHAT_ANSWER, *AUTO], admitted=True))
    assert saga is not None
    assert saga.missing == ("gateway:request.accepted",)
    assert saga.to_json()["missing"] == ["gateway:request.accepted"]


def test_an_upstream_request_needs_no_acceptance() -> None:
    assert _reconcile(row("answered", [*CHAT_ANSWER, *AUTO])) is None


def test_an_acceptance_seen_by_the_gateway_only_is_missing_from_the_log() -> None:
    # Older rows carry no admission record: the timeline's request.accepted tells the origin.
    saga = _reconcile(row("answered", [*CHAT_ANSWER, *AUTO], projected=ACCEPTED))
    assert saga is not None
    assert saga.missing == ("gateway:request.accepted",)
    assert saga.status == "answered"
    assert saga.path == "chat-answer/auto-approved"
