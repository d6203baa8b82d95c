"""Pending approvals in PostgreSQL (schema ``approvals``): they survive restarts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.contracts import DraftProduced

__all__ = ["ApprovalRepository"]


class ApprovalRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def store_pending(
        self, draft: DraftProduced, *, policy: str, expires_at: datetime
    ) -> bool:
        """Store the draft as pending; False if it was already stored (a redelivery)."""
        assert draft.action is not None
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                """
                INSERT INTO approvals.drafts (draft_event_id, request_id, tenant_id, requester_id,
                    tool, arguments, risk, summary, status, policy, draft, expires_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s)
                ON CONFLICT (draft_event_id) DO NOTHING
                """,
                (
                    draft.event_id,
                    draft.request_id,
                    draft.tenant_id,
                    draft.request.principal.user_id,
                    draft.action.tool,
                    Jsonb(draft.action.arguments),
                    draft.action.risk.value,
                    draft.action.summary,
                    policy,
                    Jsonb(draft.model_dump(mode="json")),
                    expires_at,
                ),
            )
            await conn.commit()
            return cur.rowcount == 1

    async def get(self, draft_event_id: uuid.UUID) -> dict[str, Any] | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT draft_event_id, request_id, tenant_id, requester_id, tool, arguments, risk,"
                " summary, status, policy, created_at, expires_at FROM approvals.drafts"
                " WHERE draft_event_id = %s",
                (draft_event_id,),
            )
            return await cur.fetchone()

    async def by_request(self, request_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT draft_event_id, status, tool FROM approvals.drafts WHERE request_id = %s",
                (request_id,),
            )
            return list(await cur.fetchall())
