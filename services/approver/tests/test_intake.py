"""Intake of drafts through the composition root's handler, over the in-memory store."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from approver.domain import ApprovalPolicy, ApprovalStatus, PolicySettings
from approver.service_layer.intake import IntakePorts, handle_draft
from approver.testing.fakes import InMemoryApprovalStore
from shared.contracts import AuditRecorded, Decision, DraftDecided, DraftKind, RiskLevel
from shared.principal import StaffLevel
from shared.tools import default_registry

from .conftest import DraftFactory

pytestmark = pytest.mark.unit


@pytest.fixture
def store() -> InMemoryApprovalStore:
    return InMemoryApprovalStore()


@pytest.fixture
def ports(store: InMemoryApprovalStore) -> IntakePorts:
    return IntakePorts(
        store, ApprovalPolicy(PolicySettings()), default_registry(), timedelta(hours=1)
    )


async def test_answers_are_released_once_even_when_delivered_twice(
    ports: IntakePorts, store: InMemoryApprovalStore, make_draft: DraftFactory
) -> None:
    draft = make_draft(kind=DraftKind.ANSWER)
    await handle_draft(draft, ports)
    await handle_draft(draft, ports)
    decided = [e for e in store.outbox if isinstance(e, DraftDecided)]
    assert len(decided) == 1
    assert decided[0].decision is Decision.AUTO_APPROVED
    assert [e.action for e in store.outbox if isinstance(e, AuditRecorded)] == [
        "draft.auto_approved"
    ]


async def test_an_action_waits_with_the_requirement_of_its_band(
    ports: IntakePorts, store: InMemoryApprovalStore, make_draft: DraftFactory
) -> None:
    draft = make_draft(arguments={"order_id": "HP-10024", "amount": "600.00", "reason": "torn"})
    await handle_draft(draft, ports)
    await handle_draft(draft, ports)  # a redelivery
    assert len(store.approvals) == 1
    approval = store.approvals[draft.event_id]
    assert approval.status is ApprovalStatus.PENDING
    assert (approval.requires.level, approval.requires.count) == (StaffLevel.L2, 2)
    assert approval.idempotency_key == f"approval:{draft.event_id}"
    assert [e.action for e in store.outbox] == ["approval.pending"]  # type: ignore[union-attr]
    assert not any(isinstance(e, DraftDecided) for e in store.outbox)


async def test_split_refunds_on_one_order_add_up(
    ports: IntakePorts, store: InMemoryApprovalStore, make_draft: DraftFactory
) -> None:
    for amount in ("90", "90"):
        await handle_draft(
            make_draft(arguments={"order_id": "HP-10024", "amount": amount, "reason": "broken"}),
            ports,
        )
    first, second = store.approvals.values()
    assert first.requires.level is StaffLevel.L1
    assert second.requires.level is StaffLevel.L2, "90 + 90 EUR on one order is above 100"
    assert second.amount_eur == Decimal(90)


async def test_the_registry_risk_wins_over_the_drafts_claim(
    ports: IntakePorts, store: InMemoryApprovalStore, make_draft: DraftFactory
) -> None:
    draft = make_draft("reset_password", {"user_id": "casey.customer"}, risk=RiskLevel.WRITE)
    await handle_draft(draft, ports)
    approval = store.approvals[draft.event_id]
    assert approval.risk is RiskLevel.CRITICAL
    assert approval.requires.level is StaffLevel.MANAGER
    assert store.outbox[0].details["risk_claimed"] == "write"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("tool", "arguments", "why"),
    [
        ("wire_money", {"to": "x"}, "no tool named"),
        ("issue_refund", {"order_id": "HP-10023", "amount": "-5", "reason": "x"}, "amount"),
        ("order_status", {"order_id": "HP-10023"}, "read tool"),
    ],
)
async def test_invalid_actions_are_rejected_at_once(
    ports: IntakePorts,
    store: InMemoryApprovalStore,
    make_draft: DraftFactory,
    tool: str,
    arguments: dict[str, object],
    why: str,
) -> None:
    draft = make_draft(tool, arguments)
    await handle_draft(draft, ports)
    await handle_draft(draft, ports)
    assert store.approvals[draft.event_id].status is ApprovalStatus.REJECTED
    decided = [e for e in store.outbox if isinstance(e, DraftDecided)]
    assert len(decided) == 1 and decided[0].decision is Decision.REJECTED
    assert why in decided[0].reason
