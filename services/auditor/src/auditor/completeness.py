"""Audit completeness: finding steps that never reached the log.

The hash chain (:mod:`auditor.chain`) proves the rows present were not altered or removed. It
cannot see a record that was never stored: lost in an auditor crash before its offset was
committed properly, dead-lettered, or never published by a service that died. Two independent
checks find those, both against data the auditor does not write:

1. **Reconciliation of settled requests.** The gateway keeps every request's status in
   ``gateway.requests``, moved by the ``approved`` topic as well as by audit steps, so a request
   can be ``answered`` with none of its steps in the log (the incident this was built for).
   Every request settled in the window must have the steps its path implies
   (:mod:`auditor.expectations`).
2. **Cross-check of two consumers of the audit topic.** The gateway projects the same topic,
   in its own consumer group, into ``gateway.timeline``; the timeline's ``event_id`` is the
   audit record's. Every step it projected must be in ``audit.records``.

Both skip what is younger than a lag allowance (``--lag``, 60 s by default), so records still
in flight to the auditor are not reported. While the auditor is down or far behind, they are
reported: that is the point. The gateway only projects steps of real requests (not the NIL
request id of a message too broken to carry one), so the cross-check is one-way: log ⊇ timeline.

Why not a per-saga sequence number in each record? A saga's steps come from five services,
concurrently (the agent publishes its steps at once, a person approves hours later, any consumer
may dead-letter), so a gap-free sequence needs a counter shared by all of them: a write to one
row per step from every service, across schema ownership. And it would not find the two losses
that matter most: the last step of a saga (no later record shows the gap) and a whole saga
(no record at all, the incident above). Reconciliation against the gateway's independent record
finds both; the chain already proves that stored rows stay stored.

The verifier reads the gateway's tables and writes nothing: run it with a role that has SELECT
on ``audit`` and ``gateway``. Queries stream and use indexes (``records_request_idx``,
``timeline_request_idx`` per request; ``requests_updated_idx`` and ``timeline_at_idx`` for
the window, migration 0006), so ``--since`` keeps a check proportional to the window.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.db import Pool

from .expectations import ACCEPTED, CHECKED_STATUSES, TIMED_OUT, Origin, check_saga

__all__ = [
    "DEFAULT_LAG_S",
    "CompletenessReport",
    "IncompleteSaga",
    "UnloggedStep",
    "check_completeness",
]

DEFAULT_LAG_S = 60.0

# One row per settled request with what the log and the timeline hold for it; each subquery is
# an index range scan on (request_id, ...). The origin columns are the gateway's (0005):
# ``message_sha256`` is set only when its API admitted the request; ``published_at`` once the
# broker took it (or a later step of the saga proved it did); ``timeout_audited_at`` once the
# broker took the timeout's audit record (the gateway retries that until it does, so before
# then the record is in flight, not lost).
_SETTLED = """
SELECT r.request_id, r.status, r.updated_at,
       (r.message_sha256 IS NOT NULL AND r.published_at IS NOT NULL) AS admitted,
       (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(a.service, a.action)), '[]')
          FROM audit.records a WHERE a.request_id = r.request_id) AS logged,
       (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_array(t.service, t.action)), '[]')
          FROM gateway.timeline t WHERE t.request_id = r.request_id) AS projected
FROM gateway.requests r
WHERE r.status = ANY(%(statuses)s)
  AND r.updated_at < now() - make_interval(secs => %(lag_s)s)
  AND (%(since)s::timestamptz IS NULL OR r.updated_at >= %(since)s::timestamptz)
  AND (r.status <> 'timed_out'
       OR r.timeout_audited_at < now() - make_interval(secs => %(lag_s)s))
ORDER BY r.updated_at, r.request_id
"""

# The projected steps in the window. A timeout's timeline row is written by the gateway itself
# and its audit record handed to the broker afterwards, retried until taken: it counts from
# then. (A scalar subquery, not EXISTS: it stays a per-row index probe, run for timeouts only.)
_PROJECTED_IN_WINDOW = """
t.at < now() - make_interval(secs => %(lag_s)s)
AND (%(since)s::timestamptz IS NULL OR t.at >= %(since)s::timestamptz)
AND (t.action <> %(timeout_action)s
     OR (SELECT r.timeout_audited_at FROM gateway.requests r WHERE r.request_id = t.request_id)
        < now() - make_interval(secs => %(lag_s)s))
"""
_PROJECTED_COUNTS = f"""
SELECT count(*) AS checked,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM audit.records a WHERE a.event_id = t.event_id)) AS unlogged
FROM gateway.timeline t
WHERE {_PROJECTED_IN_WINDOW}
"""  # noqa: S608 - constants only
# LATERAL ... LIMIT 1 keeps the lookup a probe of the unique event_id index per projected step;
# an anti-join would be planned as a hash of every event id in the log.
_PROJECTED_UNLOGGED = f"""
SELECT t.event_id, t.request_id, t.service, t.action, t.at
FROM gateway.timeline t
LEFT JOIN LATERAL (
    SELECT true AS found FROM audit.records a WHERE a.event_id = t.event_id LIMIT 1
) logged ON true
WHERE logged.found IS NULL AND {_PROJECTED_IN_WINDOW}
ORDER BY t.at, t.event_id
LIMIT %(limit)s
"""  # noqa: S608 - constants only


@dataclass(frozen=True)
class IncompleteSaga:
    request_id: uuid.UUID
    status: str
    settled_at: datetime
    #: The path of the saga the missing steps belong to (``front/back``, expectations).
    path: str
    missing: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": str(self.request_id),
            "status": self.status,
            "settled_at": self.settled_at.isoformat(),
            "path": self.path,
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class UnloggedStep:
    """An audit event the gateway projected that is not in the log."""

    event_id: uuid.UUID
    request_id: uuid.UUID
    service: str
    action: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "request_id": str(self.request_id),
            "step": f"{self.service}:{self.action}",
            "at": self.at.isoformat(),
        }


@dataclass
class CompletenessReport:
    sagas_checked: int = 0
    incomplete_count: int = 0
    #: The first ``limit`` incomplete sagas, oldest settled first.
    incomplete: list[IncompleteSaga] = field(default_factory=list)
    projected_checked: int = 0
    unlogged_count: int = 0
    #: The first ``limit`` projected steps missing from the log, oldest first.
    unlogged: list[UnloggedStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.incomplete_count and not self.unlogged_count


async def check_completeness(
    pool: Pool, *, since: datetime | None = None, lag_s: float = DEFAULT_LAG_S, limit: int = 100
) -> CompletenessReport:
    """Reconcile settled requests and cross-check the timeline against the log.

    ``since``: only requests settled (and steps projected) at or after it; ``lag_s``: skip what
    is younger; ``limit``: how many problems of each kind to list (all are counted).
    """
    report = CompletenessReport()
    params = {
        "statuses": list(CHECKED_STATUSES),
        "since": since,
        "lag_s": lag_s,
        "timeout_action": TIMED_OUT.action,
    }
    # One snapshot for both checks, so they agree with each other while services write;
    # the server-side cursor streams the requests, whatever the window's size.
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        async with conn.cursor(name="audit_reconcile") as stream:
            await stream.execute(_SETTLED, params)
            async for row in stream:
                report.sagas_checked += 1
                saga = _reconcile(row)
                if saga is not None:
                    report.incomplete_count += 1
                    if len(report.incomplete) < limit:
                        report.incomplete.append(saga)
        cur = await conn.execute(_PROJECTED_COUNTS, params)
        counts = await cur.fetchone()
        assert counts is not None
        report.projected_checked = counts["checked"]
        report.unlogged_count = counts["unlogged"]
        if report.unlogged_count:
            cur = await conn.execute(_PROJECTED_UNLOGGED, {**params, "limit": limit})
            report.unlogged = [UnloggedStep(**row) for row in await cur.fetchall()]
    return report


def _reconcile(row: dict[str, Any]) -> IncompleteSaga | None:
    logged = {(service, action) for service, action in row["logged"]}
    projected = {(service, action) for service, action in row["projected"]}
    # A request the gateway admitted and published must show its acceptance; for older rows
    # (before the gateway recorded admissions) the acceptance seen by either consumer decides.
    seen_accepted = any(ACCEPTED.matches(*pair) for pair in logged | projected)
    origin = Origin.GATEWAY if row["admitted"] or seen_accepted else Origin.OTHER
    verdict = check_saga(row["status"], origin, logged, projected)
    if verdict is None or verdict.complete:
        return None
    return IncompleteSaga(
        request_id=row["request_id"],
        status=row["status"],
        settled_at=row["updated_at"],
        path=verdict.path,
        missing=tuple(str(step) for step in verdict.missing),
    )
