"""One contract for the approval store, run against the in-memory fake and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from approver.domain import (
    ApprovalPolicy,
    ApprovalStatus,
    DecisionError,
    PolicySettings,
    RefusalCode,
    sign,
)
from approver.postgres.store import PostgresApprovalStore
from approver.service_layer.intake import IntakePorts, handle_draft
from approver.service_layer.ports import ApprovalQuery, ApprovalStore
from approver.testing.failpoints import Failpoints
from approver.testing.fakes import InMemoryApprovalStore
from shared.contracts import DraftProduced, utcnow
from shared.db import open_pool
from shared.principal import Principal
from shared.settings import DatabaseSettings, KafkaSettings
from shared.tools import default_registry

from .conftest import DraftFactory

POLICY = ApprovalPolicy(PolicySettings())


class StoreContract:
    """Subclasses provide ``store`` and ``enqueued`` (event ids in the store's outbox)."""

    @pytest.fixture
    def tenant(self) -> str:
        return f"t{uuid.uuid4().hex[:8]}"

    async def enqueued(self, store: ApprovalStore, request_id: uuid.UUID) -> list[str]:
        raise NotImplementedError

    async def admit(self, store: ApprovalStore, draft: DraftProduced) -> None:
        await handle_draft(
            draft, IntakePorts(store, POLICY, default_registry(), timedelta(hours=1))
        )

    async def test_admit_is_idempotent_and_tenant_scoped(
        self, store: ApprovalStore, make_draft: DraftFactory, tenant: str
    ) -> None:
        draft = make_draft(tenant=tenant)
        await self.admit(store, draft)
        await self.admit(store, draft)
        got = await store.get(tenant, draft.event_id)
        assert got is not None and got.status is ApprovalStatus.PENDING
        assert got.draft == draft
        assert await store.get("someone-else", draft.event_id) is None
        assert await self.enqueued(store, draft.request_id) == ["approval.pending"]

    async def test_list_filters(
        self, store: ApprovalStore, make_draft: DraftFactory, tenant: str
    ) -> None:
        refund = make_draft(tenant=tenant)
        ticket = make_draft(
            "create_ticket", {"subject": "broken", "description": "it broke"}, tenant=tenant
        )
        for d in (refund, ticket):
            await self.admit(store, d)
        everything = await store.list(tenant, ApprovalQuery())
        assert [a.draft_id for a in everything] == [refund.event_id, ticket.event_id]
        tickets = await store.list(tenant, ApprovalQuery(tool="create_ticket"))
        assert [a.draft_id for a in tickets] == [ticket.event_id]
        by_request = await store.list(tenant, ApprovalQuery(request_id=refund.request_id))
        assert [a.draft_id for a in by_request] == [refund.event_id]
        assert await store.list(tenant, ApprovalQuery(status=ApprovalStatus.EXECUTED)) == []
        assert len(await store.list(tenant, ApprovalQuery(limit=1, offset=1))) == 1

    async def test_decide_persists_signoffs_and_events_together(
        self,
        store: ApprovalStore,
        make_draft: DraftFactory,
        tenant: str,
        staff: Callable[..., Principal],
    ) -> None:
        draft = make_draft(
            tenant=tenant, arguments={"order_id": "HP-10024", "amount": "600", "reason": "torn"}
        )
        await self.admit(store, draft)
        now = utcnow()
        for who in ("kim", "lee"):
            await store.decide(
                tenant,
                draft.event_id,
                lambda a, who=who: sign(
                    a,
                    staff(who, tenant=tenant),
                    "approve",
                    "ok",
                    policy=POLICY,
                    now=now,
                    trace_id=None,
                ),
            )
        got = await store.get(tenant, draft.event_id)
        assert got is not None and got.status is ApprovalStatus.APPROVED
        assert [s.approver_id for s in got.signoffs] == ["kim", "lee"]
        assert got.amount_eur == Decimal("600.00")
        assert await self.enqueued(store, draft.request_id) == [
            "approval.pending",
            "approval.signed",
            "approval.signed",
            "approval.approved",
        ]

    async def test_a_refused_decision_changes_nothing(
        self,
        store: ApprovalStore,
        make_draft: DraftFactory,
        tenant: str,
        staff: Callable[..., Principal],
    ) -> None:
        draft = make_draft(tenant=tenant)
        await self.admit(store, draft)
        before = await store.get(tenant, draft.event_id)

        def refuse(_: Any) -> Any:
            raise DecisionError(RefusalCode.INSUFFICIENT_LEVEL, "no")

        with pytest.raises(DecisionError):
            await store.decide(tenant, draft.event_id, refuse)
        with pytest.raises(DecisionError) as missing:
            await store.decide(tenant, uuid.uuid4(), refuse)
        assert missing.value.code is RefusalCode.NOT_FOUND
        assert await store.get(tenant, draft.event_id) == before
        assert await self.enqueued(store, draft.request_id) == ["approval.pending"]

    async def test_cumulative_amounts_per_order(
        self, store: ApprovalStore, make_draft: DraftFactory, tenant: str
    ) -> None:
        drafts = [
            make_draft(
                tenant=tenant, arguments={"order_id": "HP-10024", "amount": a, "reason": "torn"}
            )
            for a in ("60", "60")
        ]
        for d in drafts:
            await self.admit(store, d)
        levels = [(await store.get(tenant, d.event_id)).requires.level.value for d in drafts]  # type: ignore[union-attr]
        assert levels == ["L1", "L2"]


@pytest.mark.unit
class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryApprovalStore:
        return InMemoryApprovalStore()

    async def enqueued(self, store: ApprovalStore, request_id: uuid.UUID) -> list[str]:
        assert isinstance(store, InMemoryApprovalStore)
        return [getattr(e, "action", "decided") for e in store.outbox if e.request_id == request_id]


@pytest.mark.integration
class TestPostgresStore(StoreContract):
    @pytest.fixture
    async def store(
        self, database_settings: DatabaseSettings
    ) -> AsyncIterator[PostgresApprovalStore]:
        pool = await open_pool(database_settings, name="contract")
        try:
            yield PostgresApprovalStore(pool, KafkaSettings(), Failpoints())
        finally:
            await pool.close()

    async def enqueued(self, store: ApprovalStore, request_id: uuid.UUID) -> list[str]:
        assert isinstance(store, PostgresApprovalStore)
        async with await psycopg.AsyncConnection.connect(store._pool.conninfo) as conn:
            cur = await conn.execute(
                "SELECT headers ->> 'schema', convert_from(payload, 'UTF8')::jsonb ->> 'action'"
                " FROM approvals.outbox WHERE key = %s ORDER BY seq",
                (str(request_id).encode(),),
            )
            return [action or "decided" for _, action in await cur.fetchall()]
