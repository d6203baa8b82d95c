"""Cost on every draft, and the safe-answer cache: what is stored, what is served, to whom."""

from __future__ import annotations

import uuid

import pytest

from shared.cache import AnswerCache, CacheSettings, MemoryStore
from shared.contracts import ChatRequested, ContextRetrieved, DraftKind
from shared.principal import Principal, StaffLevel
from shared.settings import ServiceSettings

from .conftest import Harness
from .helpers import CUSTOMER, L1, kb_chunks, retrieved

pytestmark = pytest.mark.unit

QUESTION = "How long is the return window?"


def versioned(event: ContextRetrieved, version: str = "cv1", tokens: int = 9) -> ContextRetrieved:
    """The event as a current retriever sends it: a content version and embedded tokens."""
    stats = event.stats.model_copy(
        update={
            "content_version": version,
            "embedding_tokens": tokens,
            "embedding_model": "text-embedding-3-small",
        }
    )
    return event.model_copy(update={"stats": stats})


def ask_again(event: ContextRetrieved, message: str | None = None) -> ContextRetrieved:
    """The same question as a new request (new ids), optionally phrased differently."""
    request = ChatRequested(
        request_id=uuid.uuid4(),
        tenant_id=event.tenant_id,
        principal=event.request.principal,
        message=message or event.request.message,
    )
    return event.model_copy(
        update={"request": request, "request_id": request.request_id, "event_id": uuid.uuid4()}
    )


async def test_every_draft_carries_its_cost_and_the_audit_record_too(harness: Harness) -> None:
    event = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy")))
    draft = await harness.ask(event)
    assert draft.cost is not None
    chat = [i for i in draft.cost.items if i.operation == "chat"]
    assert chat and chat[0].model == "extractive-v3"
    # The offline model is free but its tokens are counted.
    assert chat[0].input_tokens > 100 and chat[0].output_tokens > 5 and chat[0].usd == 0
    [embedding] = [i for i in draft.cost.items if i.operation == "embeddings"]
    assert embedding.input_tokens == 9
    assert draft.cost.usd == pytest.approx(embedding.usd) and embedding.usd > 0
    [produced] = [a for a in harness.audit(event.request_id) if a["action"] == "draft.produced"]
    assert produced["details"]["cost_usd"] == draft.cost.usd
    assert produced["details"]["served_from_cache"] is False
    metrics = (await _metrics(harness)).splitlines()
    assert any(line.startswith("platform_request_cost_usd_count{") for line in metrics)
    assert any(
        line.startswith("platform_cost_usd_total{") and 'tenant="harborpine"' in line
        for line in metrics
    )


async def test_a_repeated_question_is_served_from_cache_through_the_same_audit_steps(
    harness: Harness,
) -> None:
    first = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy")))
    fresh = await harness.ask(first)
    assert fresh.kind is DraftKind.ANSWER and not fresh.served_from_cache
    # Reworded only in case and punctuation, chunks in another order: still the same answer.
    again = ask_again(first, "  how long is the RETURN window  ")
    again = again.model_copy(update={"chunks": tuple(reversed(first.chunks))})
    cached = await harness.ask(again)
    assert cached.served_from_cache is True
    assert cached.kind is DraftKind.ANSWER
    assert {c.chunk_id for c in cached.citations} == {c.chunk_id for c in fresh.citations}
    assert all(f"[{c.marker}]" in cached.answer for c in cached.citations)
    assert sorted(harness.actions(again.request_id)) == sorted(harness.actions(first.request_id))
    assert cached.cost is not None
    assert [i.operation for i in cached.cost.items] == ["embeddings"]  # no model call
    [produced] = [a for a in harness.audit(again.request_id) if a["action"] == "draft.produced"]
    assert produced["details"]["served_from_cache"] is True


async def test_no_answer_crosses_a_permission_boundary(harness: Harness) -> None:
    customer = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy"), principal=CUSTOMER))
    await harness.ask(customer)
    staff = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy"), principal=L1))
    assert (await harness.ask(staff)).served_from_cache is False
    # Another customer with the same scope shares the customer's entry.
    sam = CUSTOMER.model_copy(update={"user_id": "sam"})
    other = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy"), principal=sam))
    assert (await harness.ask(other)).served_from_cache is True


async def test_a_hit_is_not_served_when_its_chunks_were_not_retrieved_this_time(
    harness: Harness,
) -> None:
    event = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy")))
    await harness.ask(event)
    narrower = ask_again(event).model_copy(update={"chunks": event.chunks[-1:]})
    assert (await harness.ask(narrower)).served_from_cache is False


async def test_a_new_content_version_misses(harness: Harness) -> None:
    event = versioned(retrieved(QUESTION, kb_chunks("hp-returns-policy")))
    await harness.ask(event)
    assert (await harness.ask(versioned(ask_again(event), "cv2"))).served_from_cache is False


async def test_actions_tool_answers_and_refusals_are_never_stored(harness: Harness) -> None:
    for message, doc in (
        (
            "Please refund my order HP-10023 of 80 EUR, the stove arrived broken.",
            "hp-returns-policy",
        ),
        ("Where is my order HP-10023?", "hp-order-tracking"),
        ("What is the airspeed of an unladen swallow?", "hp-returns-policy"),
    ):
        event = versioned(retrieved(message, kb_chunks(doc)))
        first = await harness.ask(event)
        assert first.kind is not DraftKind.ANSWER or "delivered" in first.answer
        assert (await harness.ask(ask_again(event))).served_from_cache is False, message


async def test_re_ingest_drops_the_answers_citing_the_document() -> None:
    store = MemoryStore()
    answers = AnswerCache(store, CacheSettings())
    from agent.answer_reuse import template_of

    chunks = kb_chunks("hp-returns-policy")
    entry = template_of("Thirty days [1].", chunks, "extractive-v3", "offline")
    assert entry is not None
    await answers.put(QUESTION, CUSTOMER.scope_key, "cv1", entry, tenant_id="harborpine")
    assert await answers.get(QUESTION, CUSTOMER.scope_key, "cv1") is not None
    assert await answers.drop_documents("other-tenant", ["hp-returns-policy"]) == 0
    assert await answers.drop_documents("harborpine", ["hp-returns-policy"]) == 1
    assert await answers.get(QUESTION, CUSTOMER.scope_key, "cv1") is None


def test_scope_keys_differ_across_roles_levels_and_tenants() -> None:
    base = Principal(user_id="a", tenant_id="t1", roles=("customer",))
    keys = {
        base.scope_key,
        base.model_copy(update={"tenant_id": "t2"}).scope_key,
        base.model_copy(update={"roles": ("support",)}).scope_key,
        base.model_copy(update={"level": StaffLevel.L1}).scope_key,
    }
    assert len(keys) == 4
    assert base.model_copy(update={"user_id": "b"}).scope_key == base.scope_key


def test_caches_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_ENABLED", "false")
    assert ServiceSettings().caches.enabled is False


async def _metrics(harness: Harness) -> str:
    from prometheus_client import generate_latest

    return generate_latest(harness.agent.service.telemetry.registry).decode()
