"""The hash chain's verification logic, on rows in memory."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditor.chain import GENESIS, canonical_record, link, storable, storable_time, verify_rows
from shared.contracts import AuditRecorded

pytestmark = pytest.mark.unit


def _rows(n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        event = AuditRecorded(
            request_id=uuid.uuid4(), tenant_id="t", service="svc", action=f"step.{seq}", actor="u"
        )
        record = canonical_record(event)
        digest = link(prev, record)
        rows.append(
            {
                "seq": seq,
                "event_id": event.event_id,
                "request_id": event.request_id,
                "tenant_id": "t",
                "service": "svc",
                "action": f"step.{seq}",
                "outcome": "ok",
                "actor": "u",
                "record": record,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    return rows, {"last_seq": n, "last_hash": prev}


async def _iter(rows: list[dict[str, Any]]) -> AsyncIterator[Mapping[str, Any]]:
    for row in rows:
        yield row


async def test_intact_chain_verifies() -> None:
    rows, head = _rows(5)
    report = await verify_rows(_iter(rows), head)
    assert report.ok, report.problems
    assert report.rows == 5
    assert report.head_hash == head["last_hash"]


async def test_altered_record_is_detected() -> None:
    rows, head = _rows(5)
    rows[2]["record"] = rows[2]["record"].replace('"actor":"u"', '"actor":"mallory"')
    report = await verify_rows(_iter(rows), head)
    assert not report.ok
    assert any("seq 3" in p and "altered" in p for p in report.problems)


async def test_altered_mirror_column_is_detected() -> None:
    rows, head = _rows(3)
    rows[1]["actor"] = "mallory"
    report = await verify_rows(_iter(rows), head)
    assert any("column actor" in p for p in report.problems)


async def test_deleted_middle_row_is_detected() -> None:
    rows, head = _rows(5)
    del rows[2]
    report = await verify_rows(_iter(rows), head)
    assert any("seq 4" in p and "prev_hash" in p for p in report.problems)


async def test_deleted_last_row_is_detected_by_the_head() -> None:
    rows, head = _rows(5)
    rows.pop()
    report = await verify_rows(_iter(rows), head)
    assert any("chain head" in p for p in report.problems)


async def test_rewritten_hash_breaks_the_next_link() -> None:
    rows, head = _rows(4)
    rows[1]["record"] = rows[1]["record"].replace("step.2", "step.X")
    rows[1]["action"] = "step.X"
    rows[1]["hash"] = link(rows[1]["prev_hash"], rows[1]["record"])
    report = await verify_rows(_iter(rows), head)
    assert any("seq 3" in p and "prev_hash" in p for p in report.problems)


def _full_rows(n: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows with every column the log stores, as PostgresAuditLog.verify reads them."""
    rows, head = _rows(n)
    for row in rows:
        record = json.loads(row["record"])
        row["subject_event_id"] = None
        row["trace_id"] = None
        row["details"] = record["details"]
        row["occurred_at"] = datetime.fromisoformat(record["occurred_at"])
    return rows, head


async def test_every_column_is_checked_against_the_record() -> None:
    rows, head = _full_rows(3)
    assert (await verify_rows(_iter(rows), head)).ok
    rows[0]["details"] = {"forged": True}
    rows[1]["occurred_at"] = rows[1]["occurred_at"] + timedelta(seconds=1)
    rows[2]["trace_id"] = "0" * 32
    problems = (await verify_rows(_iter(rows), head)).problems
    assert any("seq 1: column details" in p for p in problems)
    assert any("seq 2: column occurred_at" in p for p in problems)
    assert any("seq 3: column trace_id" in p for p in problems)


async def test_a_walk_from_an_anchor_checks_the_rest_of_the_chain() -> None:
    rows, head = _full_rows(5)
    report = await verify_rows(_iter(rows[2:]), head, anchor=rows[1]["hash"])
    assert report.ok, report.problems
    assert (report.rows, report.first_seq, report.whole_log) == (3, 3, False)
    wrong = await verify_rows(_iter(rows[2:]), head, anchor=rows[0]["hash"])
    assert any("seq 3" in p and "prev_hash" in p for p in wrong.problems)


async def test_an_empty_walk_still_checks_the_head() -> None:
    rows, head = _full_rows(2)
    assert (await verify_rows(_iter([]), head, anchor=rows[1]["hash"])).ok
    report = await verify_rows(_iter([]), head, anchor=rows[0]["hash"])
    assert any("chain head" in p for p in report.problems)


def test_storable_replaces_nul_everywhere_and_keeps_the_rest() -> None:
    assert storable({"a\x00": ["x\x00y", 1, None, {"k": "\x00"}]}) == {
        "a\ufffd": ["x\ufffdy", 1, None, {"k": "\ufffd"}]
    }
    assert storable("plain") == "plain"
    assert storable_time(datetime(2026, 1, 1)) == datetime(2026, 1, 1, tzinfo=UTC)
