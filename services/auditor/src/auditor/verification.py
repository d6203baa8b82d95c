"""``auditor verify``'s verdict: the log's integrity and its completeness, in one report.

Integrity (:mod:`auditor.chain`): no stored row was altered or removed. Completeness
(:mod:`auditor.completeness`): no step of a settled request is missing, and every step the
gateway projected from the audit topic was logged. Either kind of problem fails the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.db import Pool

from .chain import ChainReport
from .completeness import DEFAULT_LAG_S, CompletenessReport, check_completeness
from .repository import PostgresAuditLog

__all__ = ["VerifyReport", "parse_since", "verify_log"]

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``24h``, ``90m``, ``7d``, ``30s`` (that long before ``now``) or an ISO-8601 time.

    A time without a zone is UTC, like every time the platform records.
    """
    match = _RELATIVE.match(value)
    if match:
        amount, unit = float(match[1]), match[2]
        return (now or datetime.now(UTC)) - timedelta(seconds=amount * _UNIT_S[unit])
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--since {value!r}: expected a duration such as 24h, 90m, 7d, or an ISO-8601 time"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass
class VerifyReport:
    chain: ChainReport
    completeness: CompletenessReport
    since: datetime | None
    lag_s: float

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.completeness.ok

    def summary(self) -> str:
        """The one line printed when everything holds."""
        c = self.completeness
        walked = (
            "whole chain"
            if self.chain.whole_log
            else f"chain from seq {self.chain.first_seq}, recorded since {self._since()}"
        )
        window = f" settled since {self._since()}" if self.since else ""
        return (
            f"OK: {self.chain.rows} rows ({walked}), chain head {self.chain.head_hash};"
            f" {c.sagas_checked} settled sagas{window} complete;"
            f" {c.projected_checked} projected steps logged (lag {self.lag_s:g} s)"
        )

    def problems(self) -> list[str]:
        """What failed, for people: one heading per kind, one line per problem."""
        lines: list[str] = []
        c = self.completeness
        if not self.chain.ok:
            lines.append(
                f"Integrity: {len(self.chain.problems)} problem(s) in {self.chain.rows} rows"
            )
            lines += [f"  - {p}" for p in self.chain.problems]
        if c.incomplete_count:
            lines.append(
                f"Incomplete sagas: {c.incomplete_count} of {c.sagas_checked} settled requests"
                " lack audit steps"
            )
            lines += [
                f"  - request {s.request_id} {s.status} ({s.path}): missing {', '.join(s.missing)}"
                for s in c.incomplete
            ]
            lines += _more(c.incomplete_count, len(c.incomplete))
        if c.unlogged_count:
            lines.append(
                f"Projected but not logged: {c.unlogged_count} of {c.projected_checked} steps"
                " the gateway saw on the audit topic are not in the log"
            )
            lines += [
                f"  - event {u.event_id} request {u.request_id} {u.service}:{u.action}"
                f" at {u.at.isoformat()}"
                for u in c.unlogged
            ]
            lines += _more(c.unlogged_count, len(c.unlogged))
        return lines

    def to_json(self) -> dict[str, Any]:
        c = self.completeness
        return {
            "ok": self.ok,
            "since": self.since.isoformat() if self.since else None,
            "lag_s": self.lag_s,
            "chain": {
                "ok": self.chain.ok,
                "rows": self.chain.rows,
                "first_seq": self.chain.first_seq,
                "whole_log": self.chain.whole_log,
                "head_hash": self.chain.head_hash,
                "problems": self.chain.problems,
            },
            "sagas": {
                "checked": c.sagas_checked,
                "incomplete_count": c.incomplete_count,
                "incomplete": [s.to_json() for s in c.incomplete],
            },
            "projected": {
                "checked": c.projected_checked,
                "unlogged_count": c.unlogged_count,
                "unlogged": [u.to_json() for u in c.unlogged],
            },
        }

    def _since(self) -> str:
        return self.since.isoformat() if self.since else "the start"


def _more(total: int, listed: int) -> list[str]:
    return [f"  ... and {total - listed} more (--limit)"] if total > listed else []


async def verify_log(
    pool: Pool,
    *,
    since: datetime | None = None,
    lag_s: float = DEFAULT_LAG_S,
    limit: int = 100,
) -> VerifyReport:
    """Check integrity and completeness; with ``since``, only what was recorded or settled since."""
    chain = await PostgresAuditLog(pool).verify(since=since)
    completeness = await check_completeness(pool, since=since, lag_s=lag_s, limit=limit)
    return VerifyReport(chain, completeness, since, lag_s)
