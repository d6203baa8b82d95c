"""``auditor verify`` against the real schema: integrity and completeness together."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import psycopg
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.verification import verify_log
from shared.contracts import AuditRecorded
from shared.settings import DatabaseSettings

from .paths import ACCEPTED, AUTO, CHAT_ACTION, CHAT_ANSWER, CHAT_BLOCKED, EXECUTED, MCP_ACTION

pytestmark = pytest.mark.integration


def saga(request_id: uuid.UUID, steps: Sequence[str]) -> list[AuditRecorded]:
    events = []
    for step in steps:
        service, action = step.split(":")
        events.append(
            AuditRecorded(
                request_id=request_id,
                tenant_id="t",
                service=service,
                action=action,
                actor="u" if service != "approver" else "lee",
                details={"step": step},
            )
        )
    return events


def step_of(events: Sequence[AuditRecorded], step: str) -> AuditRecorded:
    service, action = step.split(":")
    return next(e for e in events if e.service == service and e.action == action)


async def test_complete_sagas_verify_ok(sandbox) -> None:
    answered, executed, pending, timed_out = (uuid.uuid4() for _ in range(4))
    sagas = {
        # Through the gateway's API: admitted (message hash) and published.
        answered: saga(answered, [*ACCEPTED, *CHAT_ANSWER, *AUTO]),
        # Published by an upstream system: no request.accepted, nothing expects one.
        executed: saga(executed, [*CHAT_ACTION, *EXECUTED, "agent:model.fallback"]),
        # An MCP tool call waiting for a person.
        pending: saga(pending, [*MCP_ACTION, "approver:approval.pending"]),
        # Admitted, never handed to the broker, ended by the deadline sweeper.
        timed_out: saga(timed_out, ["gateway:request.timed_out"]),
    }
    for events in sagas.values():
        await sandbox.append(events)
        await sandbox.project(events)
    now = await sandbox.db_now()
    await sandbox.request(answered, status="answered", message_sha256="h", published_at=now)
    await sandbox.request(executed, status="executed", published_at=now)
    await sandbox.request(pending, status="pending_approval", published_at=now)
    await sandbox.request(
        timed_out, status="timed_out", message_sha256="h", timed_out_at=now, timeout_audited_at=now
    )
    # Still in flight: not checked, though nothing of it is logged.
    await sandbox.request(uuid.uuid4(), status="drafted", published_at=now)

    report = await verify_log(sandbox.pool, since=sandbox.started_at, lag_s=0)

    assert report.ok, report.problems()
    assert report.completeness.sagas_checked == 4
    assert report.completeness.projected_checked == sum(len(e) for e in sagas.values())
    assert report.chain.rows == sum(len(e) for e in sagas.values())
    assert report.summary().startswith(f"OK: {report.chain.rows} rows (")
    assert "4 settled sagas" in report.summary()


async def test_missing_and_deleted_steps_are_reported_exactly(sandbox) -> None:
    complete, unlogged, deleted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    refused = saga(deleted, [*CHAT_BLOCKED, *AUTO])
    answered = saga(complete, [*ACCEPTED, *CHAT_ANSWER, *AUTO])
    lost = saga(unlogged, [*ACCEPTED, *CHAT_ANSWER, *AUTO])
    never_logged = step_of(lost, "agent:draft.produced")
    # The refusal is logged first, so the row removed from it sits in the middle of the chain.
    await sandbox.append(refused)
    await sandbox.append(answered)
    await sandbox.append([e for e in lost if e is not never_logged])
    for events in (refused, answered, lost):
        # The gateway's consumer saw every step, including the one the log never got.
        await sandbox.project(events)
    removed = step_of(refused, "agent:guardrail.input")
    await sandbox.delete_logged(removed.event_id)
    now = await sandbox.db_now()
    await sandbox.request(deleted, status="refused", published_at=now)
    await sandbox.request(complete, status="answered", message_sha256="h", published_at=now)
    await sandbox.request(unlogged, status="answered", message_sha256="h", published_at=now)

    report = await verify_log(sandbox.pool, since=sandbox.started_at, lag_s=0)

    assert not report.ok
    c = report.completeness
    assert c.sagas_checked == 3
    assert {s.request_id: (s.status, s.missing) for s in c.incomplete} == {
        unlogged: ("answered", ("agent:draft.produced",)),
        deleted: ("refused", ("agent:guardrail.input",)),
    }
    assert {u.event_id for u in c.unlogged} == {never_logged.event_id, removed.event_id}
    # The deleted row also breaks the chain, exactly once: at the row after it.
    assert len(report.chain.problems) == 1
    assert "prev_hash does not match" in report.chain.problems[0]
    text = "\n".join(report.problems())
    assert f"request {unlogged} answered" in text and "missing agent:draft.produced" in text
    assert f"event {never_logged.event_id}" in text
    data = report.to_json()
    assert data["ok"] is False
    assert data["sagas"]["incomplete_count"] == 2


async def test_young_steps_and_unaudited_timeouts_wait_for_the_lag(sandbox) -> None:
    answered, timed_out = uuid.uuid4(), uuid.uuid4()
    # Nothing logged yet for either: the auditor has not caught up.
    await sandbox.project(saga(answered, [*ACCEPTED, *CHAT_ANSWER, *AUTO]))
    await sandbox.project(saga(timed_out, ["gateway:request.timed_out"]))
    now = await sandbox.db_now()
    await sandbox.request(answered, status="answered", message_sha256="h", published_at=now)
    # The gateway has not handed the timeout's audit record to the broker yet (outage): it is
    # in flight at the gateway, whatever the lag.
    await sandbox.request(timed_out, status="timed_out", message_sha256="h", timed_out_at=now)

    young = await verify_log(sandbox.pool, since=sandbox.started_at, lag_s=3600)
    assert young.ok, young.problems()
    assert young.completeness.sagas_checked == 0
    assert young.completeness.projected_checked == 0

    due = await verify_log(sandbox.pool, since=sandbox.started_at, lag_s=0)
    assert [s.request_id for s in due.completeness.incomplete] == [answered]
    assert len(due.completeness.incomplete[0].missing) == 1 + len(CHAT_ANSWER) + len(AUTO)
    assert due.completeness.unlogged_count == 1 + len(CHAT_ANSWER) + len(AUTO)
    assert all(u.request_id == answered for u in due.completeness.unlogged)


async def test_a_nul_character_does_not_make_a_step_unstorable(sandbox) -> None:
    request_id = uuid.uuid4()
    event = AuditRecorded(
        request_id=request_id,
        tenant_id="t",
        service="approver",
        action="approval.signed",
        actor="lee\x00",
        details={"reason": "ok\x00then", "nested": [{"x": "\x00"}]},
    )
    assert await sandbox.append([event]) == 1
    [row] = await sandbox.logged([request_id])
    assert row["action"] == "approval.signed"
    report = await sandbox.log.verify(since=sandbox.started_at)
    assert report.ok, report.problems


async def test_an_edited_details_column_is_an_altered_row(sandbox) -> None:
    request_id = uuid.uuid4()
    await sandbox.append(saga(request_id, ["agent:draft.produced", "approver:draft.auto_approved"]))
    async with sandbox.pool.connection() as conn:
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            'UPDATE audit.records SET details = \'{"step": "forged"}\''
            " WHERE request_id = %s AND action = 'draft.produced'",
            (request_id,),
        )
    report = await sandbox.log.verify(since=sandbox.started_at)
    assert any("column details differs" in p for p in report.problems), report.problems


def test_cli_reports_a_settled_request_without_audit_rows(
    database_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The incident: a request shown as answered, no audit rows at all; verify used to say OK."""
    monkeypatch.setenv("DATABASE_URL", database_settings.dsn)
    request_id = uuid.uuid4()
    with psycopg.connect(database_settings.dsn, autocommit=True) as conn:
        [since] = conn.execute("SELECT clock_timestamp()").fetchone() or ()
        conn.execute(
            "INSERT INTO gateway.requests (request_id, tenant_id, user_id, status,"
            " message_sha256, published_at) VALUES (%s, 't', 'u', 'answered', 'h', now())",
            (request_id,),
        )
    runner = CliRunner()
    try:
        window = ["verify", "--since", since.isoformat(), "--lag", "0"]
        result = runner.invoke(app, [*window, "--json"])
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        [saga_report] = report["sagas"]["incomplete"]
        assert saga_report["request_id"] == str(request_id)
        assert saga_report["status"] == "answered"
        assert saga_report["missing"] == [
            "gateway:request.accepted",
            "retriever:guardrail.input",
            "retriever:retrieval.completed",
            "agent:agent.routed",
            "agent:guardrail.citations",
            "agent:guardrail.output",
            "agent:draft.produced",
            "approver:draft.auto_approved",
        ]
        text = runner.invoke(app, window)
        assert text.exit_code == 1
        assert f"request {request_id} answered" in text.stderr
        # Younger than the default lag: not yet due, so OK, and the line says what was checked.
        young = runner.invoke(app, ["verify", "--since", since.isoformat()])
        assert young.exit_code == 0, young.output
        assert "0 settled sagas" in young.stdout and "rows" in young.stdout
        bad = runner.invoke(app, ["verify", "--since", "yesterday"])
        assert bad.exit_code == 2
    finally:
        with psycopg.connect(database_settings.dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM gateway.requests WHERE request_id = %s", (request_id,))
