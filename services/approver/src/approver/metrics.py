"""The approver's metrics (OpenTelemetry instruments on ``/metrics``).

API process:
- ``approver.approvals.pending`` (``approver_approvals_pending{action}``) and
  ``approver.approvals.oldest_pending_age`` (``approver_approvals_oldest_pending_age_seconds``):
  observable gauges over ``approvals.drafts``. One grouped query over the pending rows (the
  partial index ``drafts_expiry_idx`` holds exactly those), refreshed every ``refresh_s`` by a
  background task with a timeout; the gauge callbacks, which run inside a scrape, only read the
  last figures, so a scrape never waits on the database.
- ``approver.decisions`` (``approver_decisions_total{outcome}``): approved, rejected (people,
  through the API) and expired (the sweeper, wherever the background loops run);
- ``approver.decision.latency`` (``approver_decision_latency_seconds``): from the draft's
  intake to the deciding sign-off or the expiry.

Executor (``python -m approver.worker``, or the API process with ``APPROVER_BACKGROUND=true``):
- ``approver.executions`` (``approver_executions_total{result}``): executed / failed, counted
  after the commit that recorded it;
- ``platform.tool.duration`` (``platform_tool_duration_seconds{tool, outcome}``) of the write
  tools (``shared.tools.metrics``).

``action`` is the tool's name, bounded by the registry; no label names a person, a request or
an approval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from shared.db import Pool
from shared.refresher import Refresher
from shared.tools import ToolRegistry
from shared.tools.metrics import ToolMetrics

__all__ = ["ApproverMetrics", "PendingGauges", "PendingSummary", "pending_in_postgres"]


#: Seconds, draft to decision: people decide in minutes to hours; expiry ends it at the
#: approval deadline (a day by default).
LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)

Outcome = Literal["approved", "rejected", "expired"]


class ApproverMetrics:
    def __init__(self, meter: metrics.Meter, registry: ToolRegistry) -> None:
        self.tools = ToolMetrics(meter, registry)
        self._decisions = meter.create_counter(
            "approver.decisions",
            unit="{decision}",
            description="Final decisions on approvals, by outcome (approved, rejected, expired).",
        )
        self._latency = meter.create_histogram(
            "approver.decision.latency",
            unit="s",
            description="Time from a draft's intake to its decision.",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        self._executions = meter.create_counter(
            "approver.executions",
            unit="{execution}",
            description="Approved actions run to an end, by result (executed, failed).",
        )

    def decided(self, outcome: Outcome, created_at: datetime, decided_at: datetime) -> None:
        self._decisions.add(1, {"outcome": outcome})
        self._latency.record(max(0.0, (decided_at - created_at).total_seconds()))

    def executed(self, *, succeeded: bool) -> None:
        self._executions.add(1, {"result": "executed" if succeeded else "failed"})


@dataclass(frozen=True)
class PendingSummary:
    #: action (tool) -> approvals pending
    by_action: dict[str, int]
    oldest_age_s: float


#: One row per tool with pending approvals; ``LIMIT`` bounds the label set even if the table
#: held tools no registry knows any more.
_PENDING = """
SELECT tool, count(*) AS pending,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_s
FROM approvals.drafts WHERE status = 'pending'
GROUP BY tool ORDER BY tool LIMIT 100
"""


def pending_in_postgres(
    pool: Callable[[], Pool], registry: ToolRegistry
) -> Callable[[], Awaitable[PendingSummary]]:
    """The summary read from PostgreSQL (``pool`` is called each time: it opens at start-up)."""
    known = {spec.name for spec in registry.specs()}

    async def read() -> PendingSummary:
        async with pool().connection() as conn:
            cur = await conn.execute(_PENDING)
            rows = await cur.fetchall()
        by_action: dict[str, int] = {}
        for row in rows:
            action = row["tool"] if row["tool"] in known else "unknown"
            by_action[action] = by_action.get(action, 0) + int(row["pending"])
        oldest = max((float(row["oldest_s"]) for row in rows), default=0.0)
        return PendingSummary(by_action, oldest)

    return read


class PendingGauges:
    """The two gauges, fed by a background refresh (see the module docstring)."""

    def __init__(
        self,
        meter: metrics.Meter,
        read: Callable[[], Awaitable[PendingSummary]],
        registry: ToolRegistry,
        *,
        refresh_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._read = read
        # Every registered action reports, 0 when none waits: a panel shows a line, not a gap.
        self._actions = sorted(spec.name for spec in registry.specs() if not spec.runs_in_agent)
        self.latest: PendingSummary | None = None
        self._refresher = Refresher(
            self.refresh, name="pending approvals", refresh_s=refresh_s, timeout_s=timeout_s
        )
        meter.create_observable_gauge(
            "approver.approvals.pending",
            callbacks=[self._observe_pending],
            unit="{approval}",
            description="Approvals waiting for a decision, by action.",
        )
        meter.create_observable_gauge(
            "approver.approvals.oldest_pending_age",
            callbacks=[self._observe_oldest],
            unit="s",
            description="Age of the oldest approval waiting for a decision (0 when none).",
        )

    def _observe_pending(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.latest is None:
            return []
        counts = dict.fromkeys(self._actions, 0) | self.latest.by_action
        return [Observation(n, {"action": action}) for action, n in sorted(counts.items())]

    def _observe_oldest(self, _: CallbackOptions) -> Iterable[Observation]:
        return [] if self.latest is None else [Observation(self.latest.oldest_age_s)]

    async def refresh(self) -> PendingSummary:
        self.latest = await self._read()
        return self.latest

    async def start(self) -> None:
        await self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()
