"""The hash chain: how a row's hash is computed, and how the whole log is verified.

Each row stores ``record``, the canonical JSON of the audited step (sorted keys, no
whitespace), and ``hash = sha256(prev_hash || record)``. The row's queryable columns must
agree with ``record``. ``audit.chain_head`` names the last row, so deleting rows at the end is
detected as well as changing or deleting any row in the middle. Anyone who can rewrite the
whole table *and* the head can forge a consistent chain: anchor the head hash outside the
database (``auditor verify`` prints it) to close that gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.contracts import AuditRecorded

__all__ = ["GENESIS", "ChainReport", "canonical_record", "link", "verify_rows"]

GENESIS = "0" * 64

#: Columns that are copies of fields in ``record`` (kept for querying).
MIRRORED = ("event_id", "request_id", "tenant_id", "service", "action", "outcome", "actor")


def canonical_record(event: AuditRecorded) -> str:
    data = event.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def link(prev_hash: str, record: str) -> str:
    return hashlib.sha256((prev_hash + record).encode()).hexdigest()


@dataclass
class ChainReport:
    rows: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_rows(
    rows: AsyncIterator[Mapping[str, Any]], head: Mapping[str, Any], *, max_problems: int = 20
) -> ChainReport:
    """Walk the rows in ``seq`` order and report every break in the chain."""
    report = ChainReport()
    prev = GENESIS
    last_seq = 0
    async for row in rows:
        report.rows += 1
        seq = row["seq"]
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
        for column in MIRRORED:
            if str(row[column]) != str(record.get(column)):
                report.problems.append(f"seq {seq}: column {column} differs from the hashed record")
        prev = row["hash"]
        last_seq = seq
        if len(report.problems) >= max_problems:
            report.problems.append("too many problems; stopped")
            return report
    if head["last_hash"] != prev or head["last_seq"] != last_seq:
        report.problems.append(
            f"chain head names seq {head['last_seq']}, the log ends at seq {last_seq} "
            "(rows deleted at the end, or head altered)"
        )
    report.head_hash = prev
    return report
