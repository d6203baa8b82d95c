"""The verify report's verdict and how it reads, on reports built in memory."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from auditor.chain import ChainReport
from auditor.completeness import CompletenessReport, IncompleteSaga, UnloggedStep
from auditor.verification import VerifyReport, parse_since

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_since_accepts_durations_and_times() -> None:
    assert parse_since("24h", now=NOW) == NOW - timedelta(hours=24)
    assert parse_since("90m", now=NOW) == NOW - timedelta(minutes=90)
    assert parse_since("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_since("30s", now=NOW) == NOW - timedelta(seconds=30)
    assert parse_since("2026-11-25T08:00:00", now=NOW) == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_since("2026-11-25T08:00:00+01:00", now=NOW) == datetime(
        2026, 11, 25, 7, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="duration"):
        parse_since("yesterday", now=NOW)


def test_ok_line_says_what_was_checked() -> None:
    report = VerifyReport(
        ChainReport(rows=120, first_seq=1, head_hash="ab" * 32),
        CompletenessReport(sagas_checked=14, projected_checked=96),
        since=None,
        lag_s=60,
    )
    assert report.ok
    assert report.summary() == (
        f"OK: 120 rows (whole chain), chain head {'ab' * 32}; 14 settled sagas complete;"
        " 96 projected steps logged (lag 60 s)"
    )
    partial = VerifyReport(
        ChainReport(rows=3, first_seq=118, whole_log=False),
        CompletenessReport(),
        since=NOW,
        lag_s=5,
    )
    assert "chain from seq 118, recorded since 2026-11-26T12:00:00+00:00" in partial.summary()


def test_each_kind_of_problem_fails_and_is_listed() -> None:
    request_id, event_id = uuid.uuid4(), uuid.uuid4()
    completeness = CompletenessReport(
        sagas_checked=3,
        incomplete_count=2,
        incomplete=[
            IncompleteSaga(
                request_id, "answered", NOW, "chat-answer/auto-approved", ("agent:draft.produced",)
            )
        ],
        projected_checked=10,
        unlogged_count=1,
        unlogged=[UnloggedStep(event_id, request_id, "agent", "draft.produced", NOW)],
    )
    chain = ChainReport(rows=9, first_seq=1, problems=["seq 4: hash does not match (row altered)"])
    report = VerifyReport(chain, completeness, since=None, lag_s=60)
    assert not report.ok
    text = "\n".join(report.problems())
    assert "Integrity: 1 problem(s) in 9 rows" in text
    assert "row altered" in text
    assert "Incomplete sagas: 2 of 3 settled requests" in text
    assert (
        f"request {request_id} answered (chat-answer/auto-approved): missing agent:draft.produced"
        in text
    )
    assert "... and 1 more (--limit)" in text
    assert f"event {event_id} request {request_id} agent:draft.produced" in text
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is False
    assert data["chain"]["problems"] == chain.problems
    assert data["sagas"]["incomplete"][0]["missing"] == ["agent:draft.produced"]
    assert data["projected"]["unlogged"][0]["step"] == "agent:draft.produced"

    only_unlogged = VerifyReport(
        ChainReport(rows=1, first_seq=1),
        CompletenessReport(projected_checked=1, unlogged_count=1),
        since=None,
        lag_s=60,
    )
    assert not only_unlogged.ok
