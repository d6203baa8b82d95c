"""Approvals in PostgreSQL (schema ``approvals``): the store, and the row helpers the executor
and the sweeper share. Every change commits together with its outbox events."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.contracts import DraftProduced, ExecutionResult, RiskLevel, Signoff
from shared.db import Pool
from shared.principal import StaffLevel
from shared.settings import KafkaSettings

from ..domain import (
    Approval,
    ApprovalStatus,
    DecisionError,
    RefusalCode,
    Requirement,
    Transition,
)
from ..service_layer.ports import ApprovalQuery, Decider, OutboxEvent, Planner, topic_of
from ..testing.failpoints import Failpoints
from .outbox import enqueue, trace_headers

__all__ = [
    "EXECUTOR_CHANNEL",
    "PostgresApprovalStore",
    "enqueue_all",
    "lock_approvals",
    "save_state",
]

#: NOTIFY channel that wakes executors when an approval reaches `approved`.
EXECUTOR_CHANNEL = "approvals_approved"

_COLUMNS = (
    "draft_event_id, request_id, tenant_id, requester_id, tool, arguments, risk, summary,"
    " status, policy, draft, created_at, expires_at, required_level, required_count,"
    " policy_amount_eur, idempotency_key, decided_at, decision_reason, execution, trace_headers"
)


class PostgresApprovalStore:
    def __init__(self, pool: Pool, kafka: KafkaSettings, failpoints: Failpoints) -> None:
        self._pool = pool
        self._kafka = kafka
        self._failpoints = failpoints

    async def admit(self, draft: DraftProduced, order_key: str | None, plan: Planner) -> bool:
        async with self._pool.connection() as conn, conn.transaction():
            if order_key is not None:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7215003))",
                    (f"{draft.tenant_id}|{order_key}",),
                )
            known = await conn.execute(
                "SELECT 1 FROM approvals.drafts WHERE draft_event_id = %s", (draft.event_id,)
            )
            if await known.fetchone() is not None:
                return False
            earlier = await _earlier_eur(conn, draft, order_key) if order_key else Decimal(0)
            admission = plan(earlier)
            await _insert(conn, admission.approval)
            await enqueue_all(conn, self._kafka, admission.events, trace=admission.approval.trace)
            self._failpoints.hit("intake.before_commit")
        return True

    async def release(self, events: Sequence[OutboxEvent]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            await enqueue_all(conn, self._kafka, events)

    async def get(self, tenant_id: str, draft_id: uuid.UUID) -> Approval | None:
        async with self._pool.connection() as conn:
            found = await _select(
                conn, "tenant_id = %s AND draft_event_id = %s", (tenant_id, draft_id)
            )
            await conn.rollback()
        return found[0] if found else None

    async def list(self, tenant_id: str, query: ApprovalQuery) -> list[Approval]:
        where, params = ["tenant_id = %s"], [tenant_id]
        if query.status is not None:
            where.append("status = %s")
            params.append(query.status.value)
        if query.tool is not None:
            where.append("tool = %s")
            params.append(query.tool)
        if query.request_id is not None:
            where.append("request_id = %s")
            params.append(str(query.request_id))
        async with self._pool.connection() as conn:
            found = await _select(
                conn,
                " AND ".join(where) + " ORDER BY created_at, draft_event_id LIMIT %s OFFSET %s",
                (*params, query.limit, query.offset),
            )
            await conn.rollback()
        return found

    async def decide(self, tenant_id: str, draft_id: uuid.UUID, apply: Decider) -> Transition:
        async with self._pool.connection() as conn, conn.transaction():
            locked = await _select(
                conn,
                "tenant_id = %s AND draft_event_id = %s FOR UPDATE",
                (tenant_id, draft_id),
            )
            if not locked:
                raise DecisionError(RefusalCode.NOT_FOUND, "no such approval")
            transition = apply(locked[0])
            signoff = transition.signoff
            await conn.execute(
                "INSERT INTO approvals.signoffs"
                " (draft_event_id, approver_id, level, decision, reason, at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    draft_id,
                    signoff.approver_id,
                    signoff.level.value,
                    signoff.decision,
                    signoff.reason,
                    signoff.at,
                ),
            )
            await save_state(conn, transition.approval)
            await enqueue_all(conn, self._kafka, transition.events, trace=transition.approval.trace)
            self._failpoints.hit("decide.before_commit")
        return transition


async def enqueue_all(
    conn: AsyncConnection[Any],
    kafka: KafkaSettings,
    events: Sequence[OutboxEvent],
    *,
    trace: Mapping[str, str] | None = None,
) -> None:
    """Enqueue ``events``, continuing ``trace`` (an approval's) or else the current span's."""
    for event in events:
        await enqueue(conn, kafka, topic_of(event), event, trace=dict(trace) if trace else None)


async def save_state(conn: AsyncConnection[Any], approval: Approval) -> None:
    """Write the decision fields of ``approval``; wake executors when it became approved."""
    await conn.execute(
        "UPDATE approvals.drafts SET status = %s, decided_at = %s, decision_reason = %s,"
        " execution = %s, updated_at = now() WHERE draft_event_id = %s",
        (
            approval.status.value,
            approval.decided_at,
            approval.reason,
            Jsonb(approval.execution.model_dump(mode="json")) if approval.execution else None,
            approval.draft_id,
        ),
    )
    if approval.status is ApprovalStatus.APPROVED:
        await conn.execute("SELECT pg_notify(%s, '')", (EXECUTOR_CHANNEL,))


async def lock_approvals(
    conn: AsyncConnection[Any], where: str, params: Sequence[Any], *, limit: int
) -> list[Approval]:
    """Lock up to ``limit`` approvals matching ``where``, skipping those another worker holds."""
    return await _select(conn, f"{where} LIMIT {int(limit)} FOR UPDATE SKIP LOCKED", params)


async def _select(conn: AsyncConnection[Any], where: str, params: Sequence[Any]) -> list[Approval]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM approvals.drafts WHERE {where}",  # noqa: S608 - fixed text
        params,
    )
    rows = [_row(r) for r in await cur.fetchall()]
    if not rows:
        return []
    cur = await conn.execute(
        "SELECT draft_event_id, approver_id, level, decision, reason, at"
        " FROM approvals.signoffs WHERE draft_event_id = ANY(%s) ORDER BY at, approver_id",
        ([r["draft_event_id"] for r in rows],),
    )
    signoffs: dict[uuid.UUID, list[Signoff]] = {}
    for s in await cur.fetchall():
        signoffs.setdefault(s["draft_event_id"], []).append(
            Signoff(
                approver_id=s["approver_id"],
                level=StaffLevel(s["level"]),
                decision=s["decision"],
                reason=s["reason"],
                at=s["at"],
            )
        )
    return [_approval(r, tuple(signoffs.get(r["draft_event_id"], ()))) for r in rows]


def _row(row: Any) -> dict[str, Any]:
    return row if isinstance(row, dict) else dict(row)


def _approval(r: dict[str, Any], signoffs: tuple[Signoff, ...]) -> Approval:
    return Approval(
        draft_id=r["draft_event_id"],
        request_id=r["request_id"],
        tenant_id=r["tenant_id"],
        requester_id=r["requester_id"],
        tool=r["tool"],
        arguments=r["arguments"],
        risk=RiskLevel(r["risk"]),
        summary=r["summary"],
        status=ApprovalStatus(r["status"]),
        policy=r["policy"],
        requires=Requirement(level=StaffLevel(r["required_level"]), count=r["required_count"]),
        signoffs=signoffs,
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        idempotency_key=r["idempotency_key"],
        draft=DraftProduced.model_validate(r["draft"]),
        amount_eur=r["policy_amount_eur"],
        decided_at=r["decided_at"],
        reason=r["decision_reason"],
        execution=ExecutionResult.model_validate(r["execution"]) if r["execution"] else None,
        trace=r["trace_headers"],
    )


async def _insert(conn: AsyncConnection[Any], a: Approval) -> None:
    await conn.execute(
        "INSERT INTO approvals.drafts (draft_event_id, request_id, tenant_id, requester_id,"
        " tool, arguments, risk, summary, status, policy, draft, created_at, expires_at,"
        " required_level, required_count, policy_amount_eur, idempotency_key, decided_at,"
        " decision_reason, execution, trace_headers)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s)",
        (
            a.draft_id,
            a.request_id,
            a.tenant_id,
            a.requester_id,
            a.tool,
            Jsonb(a.arguments),
            a.risk.value,
            a.summary,
            a.status.value,
            a.policy,
            Jsonb(a.draft.model_dump(mode="json")),
            a.created_at,
            a.expires_at,
            a.requires.level.value,
            a.requires.count,
            a.amount_eur,
            a.idempotency_key,
            a.decided_at,
            a.reason,
            Jsonb(a.execution.model_dump(mode="json")) if a.execution else None,
            Jsonb(dict(a.trace) or trace_headers()),
        ),
    )


async def _earlier_eur(
    conn: AsyncConnection[Any], draft: DraftProduced, order_key: str
) -> Decimal | None:
    """EUR total of the standing (not rejected, expired or failed) actions on the same order."""
    assert draft.action is not None
    cur = await conn.execute(
        "SELECT count(*) AS n, count(policy_amount_eur) AS known,"
        " coalesce(sum(policy_amount_eur), 0) AS total FROM approvals.drafts"
        " WHERE tenant_id = %s AND tool = %s AND upper(arguments ->> 'order_id') = %s"
        " AND status IN ('pending', 'approved', 'executed')",
        (draft.tenant_id, draft.action.tool, order_key.upper()),
    )
    row = await cur.fetchone()
    assert row is not None
    return Decimal(row["total"]) if row["n"] == row["known"] else None
