"""Builders shared by the approver's tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from approver.app import build_service
from approver.settings import ApproverSettings
from devstack.seed import seed_demo_data
from shared.auth import TokenService
from shared.contracts import (
    ChatRequested,
    DraftKind,
    DraftProduced,
    ProposedAction,
    RiskLevel,
)
from shared.principal import Principal, StaffLevel
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from shared.testing import serve_in_thread

DraftFactory = Callable[..., DraftProduced]


@pytest.fixture
def make_draft() -> DraftFactory:
    def make(
        tool: str = "issue_refund",
        arguments: dict[str, Any] | None = None,
        *,
        requester: str = "casey.customer",
        tenant: str = "harborpine",
        risk: RiskLevel = RiskLevel.WRITE,
        summary: str | None = None,
        kind: DraftKind = DraftKind.ACTION,
    ) -> DraftProduced:
        if arguments is None:
            arguments = {
                "order_id": "HP-10023",
                "amount": "80.00",
                "currency": "EUR",
                "reason": "stove arrived broken",
            }
        principal = Principal(user_id=requester, tenant_id=tenant, roles=("customer",))
        request = ChatRequested(
            request_id=uuid.uuid4(), tenant_id=tenant, principal=principal, message="please"
        )
        action = (
            ProposedAction(
                tool=tool, arguments=arguments, risk=risk, summary=summary or f"{tool} please"
            )
            if kind is DraftKind.ACTION
            else None
        )
        return DraftProduced(
            request_id=request.request_id,
            tenant_id=tenant,
            request=request,
            kind=kind,
            answer="I have prepared it." if action else "Yes [1].",
            action=action,
            model="test",
            retrieved_event_id=uuid.uuid4(),
        )

    return make


@pytest.fixture
def staff() -> Callable[..., Principal]:
    def make(
        user: str, level: StaffLevel | str = StaffLevel.L2, tenant: str = "harborpine"
    ) -> Principal:
        return Principal(
            user_id=user, tenant_id=tenant, roles=("support",), level=StaffLevel(level)
        )

    return make


@pytest.fixture(scope="session")
def tokens() -> TokenService:
    return TokenService(AuthSettings())


@pytest.fixture
def bearer(tokens: TokenService) -> Callable[..., dict[str, str]]:
    def make(
        user: str,
        level: str = "L2",
        *,
        tenant: str = "harborpine",
        roles: tuple[str, ...] = ("support",),
    ) -> dict[str, str]:
        token = tokens.mint(user_id=user, tenant_id=tenant, roles=roles, level=level)
        return {"Authorization": f"Bearer {token}"}

    return make


def seed_tenant_orders(dsn: str, tenant: str) -> None:
    """The demo orders and accounts of harborpine, copied into ``tenant`` (a test's own)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tools.accounts (tenant_id, user_id, display_name, status, tier)"
            " SELECT %s, user_id, display_name, status, tier FROM tools.accounts"
            " WHERE tenant_id = 'harborpine' ON CONFLICT DO NOTHING",
            (tenant,),
        )
        conn.execute(
            "INSERT INTO tools.orders (tenant_id, order_id, customer_id, status, total, currency,"
            " items) SELECT %s, order_id, customer_id, status, total, currency, items"
            " FROM tools.orders WHERE tenant_id = 'harborpine' ON CONFLICT DO NOTHING",
            (tenant,),
        )


@pytest.fixture
def approver_url(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> Iterator[str]:
    """A running approver (intake, API, inbox, executor) on a loopback port of its own."""
    seed_demo_data(database_settings.dsn)
    settings = ApproverSettings(kafka=kafka_settings, database=database_settings)
    with serve_in_thread(build_service(settings).http_app()) as url:
        yield url
