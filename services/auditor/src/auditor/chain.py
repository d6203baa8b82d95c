"""The hash chain: how a row's hash is computed, and how the log's integrity is verified.

Each row stores ``record``, the canonical JSON of the audited step (sorted keys, no
whitespace), and ``hash = sha256(prev_hash || record)``. Every other column of the row is a
queryable copy of a field of ``record`` and must agree with it, so an edit of any column is
detected, not only of the hashed text. ``audit.chain_head`` names the last row, so deleting
rows at the end is detected as well as changing or deleting any row in the middle. Anyone who
can rewrite the whole table *and* the head can forge a consistent chain: anchor the head hash
outside the database (``auditor verify`` prints it) to close that gap.

Integrity is half of the guarantee: a step that never reached the log leaves no break in the
chain. :mod:`auditor.completeness` checks the other half.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.contracts import AuditRecorded

__all__ = [
    "GENESIS",
    "ChainReport",
    "canonical_record",
    "link",
    "storable",
    "storable_time",
    "verify_rows",
]

GENESIS = "0" * 64

#: Columns that are copies of fields in ``record`` (kept for querying), compared as text.
MIRRORED = (
    "event_id",
    "request_id",
    "tenant_id",
    "service",
    "action",
    "outcome",
    "actor",
    "subject_event_id",
    "trace_id",
)

#: What a NUL character becomes in the queryable columns (PostgreSQL text and jsonb cannot
#: hold it). ``record`` keeps the step exactly as it came, escaped by JSON, and is what is hashed.
NUL_REPLACEMENT = "\ufffd"


def canonical_record(event: AuditRecorded) -> str:
    data = event.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, record: str) -> str:
    return hashlib.sha256((prev_hash + record).encode()).hexdigest()


def storable(value: Any) -> Any:
    """``value`` as the queryable columns can hold it: NUL characters replaced, recursively.

    Without this one NUL in a step's details would make every attempt to store it fail, and the
    step would end on the dead-letter topic instead of in the log. The same function is applied
    when verifying, so the copy is still checked against the hashed record.
    """
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def storable_time(value: datetime) -> datetime:
    """Event times are UTC by contract; a naive one is stored as UTC, never as local time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class ChainReport:
    rows: int = 0
    #: The seq the walk started at (``None`` when no row was walked).
    first_seq: int | None = None
    #: Whether the walk started at the genesis hash, i.e. checked the whole log.
    whole_log: bool = True
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_rows(
    rows: AsyncIterator[Mapping[str, Any]],
    head: Mapping[str, Any],
    *,
    anchor: str = GENESIS,
    max_problems: int = 20,
) -> ChainReport:
    """Walk the rows in ``seq`` order and report every break in the chain.

    ``anchor`` is the hash of the row before the first one walked (GENESIS for the whole log):
    a partial walk (``auditor verify --since``) trusts the rows before it and checks the rest.
    """
    report = ChainReport(whole_log=anchor == GENESIS)
    prev = anchor
    last_seq: int | None = None
    async for row in rows:
        report.rows += 1
        seq = row["seq"]
        if report.first_seq is None:
            report.first_seq = seq
        if row["prev_hash"] != prev:
            report.problems.append(
                f"seq {seq}: prev_hash does not match the row before (row deleted or changed)"
            )
        if link(row["prev_hash"], row["record"]) != row["hash"]:
            report.problems.append(f"seq {seq}: hash does not match its content (row altered)")
        try:
            record = json.loads(row["record"])
        except json.JSONDecodeError:
            report.problems.append(f"seq {seq}: record is not JSON (row altered)")
            record = {}
        report.problems.extend(
            f"seq {seq}: column {column} differs from the hashed record (row altered)"
            for column in _disagreeing_columns(row, record)
        )
        prev = row["hash"]
        last_seq = seq
        if len(report.problems) >= max_problems:
            report.problems.append("too many problems; stopped")
            return report
    if last_seq is None:
        # Nothing walked: the head must still name the row the walk was anchored at.
        if head["last_hash"] != anchor:
            report.problems.append(
                f"chain head names seq {head['last_seq']}, which is not the last row"
                " (rows deleted at the end, or head altered)"
            )
    elif head["last_hash"] != prev or head["last_seq"] != last_seq:
        report.problems.append(
            f"chain head names seq {head['last_seq']}, the log ends at seq {last_seq} "
            "(rows deleted at the end, or head altered)"
        )
    report.head_hash = prev
    return report


def _disagreeing_columns(row: Mapping[str, Any], record: Mapping[str, Any]) -> list[str]:
    """The columns of ``row`` that are not the copy of ``record`` they must be."""
    columns = [
        column
        for column in MIRRORED
        if column in row and str(row[column]) != str(storable(record.get(column)))
    ]
    if "details" in row and row["details"] != storable(record.get("details", {})):
        columns.append("details")
    if "occurred_at" in row and not _same_time(row["occurred_at"], record.get("occurred_at")):
        columns.append("occurred_at")
    return columns


def _same_time(column: Any, recorded: Any) -> bool:
    if not isinstance(column, datetime) or not isinstance(recorded, str):
        return False
    try:
        return storable_time(column) == storable_time(datetime.fromisoformat(recorded))
    except ValueError:
        return False
