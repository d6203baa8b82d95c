"""One contract for the gateway's request store: PostgreSQL and the in-process store.

The API tests run on both stores as well; this suite pins the store's own promises
(admission of keyed attempts, publish leases, the monotonic projection, deadlines and their
audit) so the in-process store cannot drift from the one that is deployed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from gateway.chats import request_id_for
from gateway.records import AdmissionKind, RequestRecord, TimedOut, timeout_audit_id
from gateway.repository import RequestRepository
from gateway.status import RequestStatus
from gateway.store import MemoryRequestStore, RequestStore
from shared.contracts import AuditOutcome, AuditRecorded, ChatRequested
from shared.db import open_pool
from shared.principal import Principal
from shared.settings import DatabaseSettings

from .builders import decided

#: A lock key of this suite's own: the deadline sweeper of other tests uses another.
LOCK_KEY = 0x5EED_C0DE


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.unit),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RequestStore]:
    if request.param == "memory":
        yield MemoryRequestStore()
        return
    settings: DatabaseSettings = request.getfixturevalue("database_settings")
    pool = await open_pool(settings, name="test-request-store")
    try:
        yield RequestRepository(pool)
    finally:
        await pool.close()


def _tenant() -> str:
    # The PostgreSQL database is shared by the session: each test works in a tenant of its own.
    return f"t-{uuid.uuid4().hex[:8]}"


async def _admit(
    store: RequestStore,
    tenant: str,
    *,
    user: str = "casey",
    key: str | None = None,
    digest: str = "d1",
    claim_s: float = 10.0,
) -> tuple[AdmissionKind, uuid.UUID, int]:
    fresh = uuid.uuid4()

    def attempt_id(n: int) -> uuid.UUID:
        return request_id_for(tenant, user, key, n) if key else fresh

    admission = await store.admit(
        tenant_id=tenant,
        user_id=user,
        trace_id="ab" * 16,
        message_sha256=digest,
        idempotency_key=key,
        attempt_id=attempt_id,
        claim_s=claim_s,
    )
    return admission.kind, admission.request_id, admission.attempt


def _chat(request_id: uuid.UUID, tenant: str) -> ChatRequested:
    principal = Principal(user_id="casey", tenant_id=tenant, roles=("customer",))
    return ChatRequested(
        request_id=request_id, tenant_id=tenant, principal=principal, message="hello"
    )


async def _record(store: RequestStore, request_id: uuid.UUID) -> RequestRecord:
    record = await store.get(request_id)
    assert record is not None
    return record


def _step(
    request_id: uuid.UUID,
    tenant: str,
    action: str,
    *,
    service: str = "retriever",
    actor: str | None = None,
    details: dict[str, object] | None = None,
    at: datetime | None = None,
) -> AuditRecorded:
    return AuditRecorded(
        request_id=request_id,
        tenant_id=tenant,
        occurred_at=at or datetime.now(UTC),
        service=service,
        action=action,
        outcome=AuditOutcome.OK,
        actor=actor or service,
        trace_id="ab" * 16,
        details=details or {},
    )


async def test_a_new_request_is_accepted_unpublished_with_a_lease(store: RequestStore) -> None:
    tenant = _tenant()
    kind, request_id, attempt = await _admit(store, tenant)
    assert (kind, attempt) == (AdmissionKind.NEW, 1)
    record = await _record(store, request_id)
    assert record.status is RequestStatus.ACCEPTED and not record.settled
    assert record.tenant_id == tenant and record.user_id == "casey"
    assert record.published_at is None and record.publish_claimed_until is not None
    await store.mark_published(request_id)
    record = await _record(store, request_id)
    assert record.published_at is not None and record.publish_claimed_until is None
    assert await store.get(uuid.uuid4()) is None


async def test_a_key_names_one_request_of_one_user_and_one_message(store: RequestStore) -> None:
    tenant = _tenant()
    _, first, _ = await _admit(store, tenant, key="k")
    await store.mark_published(first)
    assert (await _admit(store, tenant, key="k"))[:2] == (AdmissionKind.EXISTING, first)
    assert (await _admit(store, tenant, key="k", digest="d2"))[0] is AdmissionKind.MISMATCH
    # Another user's key of the same name is theirs: a request of its own.
    kind, other, _ = await _admit(store, tenant, key="k", user="mallory")
    assert kind is AdmissionKind.NEW and other != first


async def test_an_unpublished_attempt_is_published_by_one_caller_at_a_time(
    store: RequestStore,
) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant, key="k")
    assert (await _admit(store, tenant, key="k"))[0] is AdmissionKind.PUBLISHING
    await store.release_claim(request_id)  # that publish failed
    assert (await _admit(store, tenant, key="k"))[:2] == (AdmissionKind.REPUBLISH, request_id)
    assert (await _admit(store, tenant, key="k"))[0] is AdmissionKind.PUBLISHING


async def test_a_lapsed_lease_may_be_taken_over(store: RequestStore) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant, key="k", claim_s=0.05)
    await asyncio.sleep(0.1)
    assert (await _admit(store, tenant, key="k"))[:2] == (AdmissionKind.REPUBLISH, request_id)


async def test_the_projection_only_moves_forward_and_keeps_each_step_once(
    store: RequestStore,
) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant)
    retrieved = _step(request_id, tenant, "retrieval.completed", details={"chunks": 3})
    drafted = _step(request_id, tenant, "draft.produced", service="agent")
    noted = _step(request_id, tenant, "guardrail.checked", service="agent")
    # Out of order, and the retrieval step delivered twice.
    await store.apply_audit([drafted, retrieved])
    await store.apply_audit([retrieved, noted])
    record = await _record(store, request_id)
    assert record.status is RequestStatus.DRAFTED
    assert record.published_at is not None, "a step of the saga proves it was published"
    steps = await store.timeline(request_id)
    assert sorted(s.action for s in steps) == sorted(
        ["retrieval.completed", "draft.produced", "guardrail.checked"]
    )
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    assert next(s for s in steps if s.action == "retrieval.completed").details == {"chunks": 3}
    later = await store.timeline(request_id, after=max(s.at for s in steps))
    assert [s.event_id for s in later] == [
        max(steps, key=lambda s: (s.at, str(s.event_id))).event_id
    ]


async def test_the_timeline_keeps_only_what_callers_may_see(store: RequestStore) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant)
    step = _step(
        request_id, tenant, "retrieval.completed", details={"chunks": 2, "query": "my e-mail is"}
    )
    await store.apply_audit([step])
    [seen] = await store.timeline(request_id)
    assert seen.details == {"chunks": 2}


async def test_a_decision_settles_the_request_with_its_result(store: RequestStore) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant)
    event = decided(_chat(request_id, tenant))
    await store.apply_decision(event, "cd" * 16)
    record = await _record(store, request_id)
    assert record.settled and record.status is RequestStatus.ANSWERED
    assert record.result is not None and record.result["decision"] == event.decision.value
    assert record.trace_id == "ab" * 16, "the trace the request started keeps it"
    # A step arriving after the end cannot move it back.
    await store.apply_audit([_step(request_id, tenant, "retrieval.completed")])
    assert (await _record(store, request_id)).status is RequestStatus.ANSWERED


async def test_a_step_of_a_request_the_gateway_never_saw_creates_its_row(
    store: RequestStore,
) -> None:
    tenant, request_id = _tenant(), uuid.uuid4()
    await store.apply_audit(
        [_step(request_id, tenant, "request.accepted", service="gateway", actor="casey")]
    )
    record = await _record(store, request_id)
    assert record.status is RequestStatus.ACCEPTED and record.user_id == "casey"


async def test_overdue_requests_time_out_once_and_a_retry_starts_a_new_attempt(
    store: RequestStore,
) -> None:
    tenant = _tenant()
    _, stalled, _ = await _admit(store, tenant, key="k")
    await store.mark_published(stalled)
    await store.apply_audit([_step(stalled, tenant, "retrieval.completed")])
    _, leased, _ = await _admit(store, tenant, key="other")  # its publisher is still at work
    await asyncio.sleep(0.05)

    def mine(items: list[TimedOut] | None) -> list[TimedOut]:
        assert items is not None
        return [t for t in items if t.tenant_id == tenant]

    ended = mine(
        await store.time_out_due(
            lock_key=LOCK_KEY, answer_deadline_s=0.0, approval_deadline_s=3600.0, limit=1000
        )
    )
    assert [t.request_id for t in ended] == [stalled]
    assert ended[0].stalled_at == "agent" and "stalled at agent" in ended[0].reason
    record = await _record(store, stalled)
    assert record.status is RequestStatus.TIMED_OUT and record.stalled_at == "agent"
    assert record.result == {"kind": "timeout", "stalled_at": "agent", "reason": ended[0].reason}
    [step] = [s for s in await store.timeline(stalled) if s.action == "request.timed_out"]
    assert step.event_id == timeout_audit_id(stalled) and step.outcome == "error"
    again = await store.time_out_due(
        lock_key=LOCK_KEY, answer_deadline_s=0.0, approval_deadline_s=3600.0, limit=1000
    )
    assert mine(again) == [], "a timed-out request is not timed out again"
    assert (await _record(store, leased)).status is RequestStatus.ACCEPTED

    kind, retry, attempt = await _admit(store, tenant, key="k")
    assert (kind, attempt) == (AdmissionKind.NEW, 2) and retry != stalled


async def test_timeouts_are_audited_until_the_broker_takes_them(store: RequestStore) -> None:
    tenant = _tenant()
    _, request_id, _ = await _admit(store, tenant)
    await store.mark_published(request_id)
    await asyncio.sleep(0.05)
    await store.time_out_due(
        lock_key=LOCK_KEY, answer_deadline_s=0.0, approval_deadline_s=3600.0, limit=1000
    )
    offered: list[list[uuid.UUID]] = []

    def publisher(take: bool) -> Callable[[list[TimedOut]], Awaitable[set[uuid.UUID]]]:
        async def publish(items: list[TimedOut]) -> set[uuid.UUID]:
            ours = [t.request_id for t in items if t.tenant_id == tenant]
            offered.append(ours)
            return {t.request_id for t in items} if take else set()

        return publish

    await store.audit_timeouts(lock_key=LOCK_KEY, limit=1000, publish=publisher(take=False))
    await store.audit_timeouts(lock_key=LOCK_KEY, limit=1000, publish=publisher(take=True))
    await store.audit_timeouts(lock_key=LOCK_KEY, limit=1000, publish=publisher(take=True))
    assert offered[:2] == [[request_id], [request_id]], "offered again after a broker outage"
    assert all(request_id not in batch for batch in offered[2:]), "and not after it was taken"
