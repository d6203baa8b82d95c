"""The agent's /metrics after real requests through its composition root (fakes, in-memory
broker): GenAI tokens and duration by model and route, fallbacks, tool timings, citations,
dead letters."""

from __future__ import annotations

import httpx
import pytest

from agent.handlers import ModelTiers
from agent.models import ExtractiveModel
from agent.models.port import Conversation, ModelReply, PermanentModelError
from shared.contracts import Topic
from shared.testing import sample_value, scrape

from .conftest import Harness
from .helpers import kb_chunks, retrieved

pytestmark = pytest.mark.unit


class _BrokenModel:
    """A chat model that always fails for good: the chain falls back to the offline one."""

    name = "small"
    provider = "openai"

    async def complete(self, conversation: Conversation) -> ModelReply:
        raise PermanentModelError("bad request", reason="http_400")


async def _scrape(harness: Harness) -> str:
    app = harness.agent.service.http_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agent"
    ) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_agent_metric_is_on_metrics_with_its_labels(harness: Harness) -> None:
    await harness.ask(
        retrieved("How long is the warranty on the stove?", kb_chunks("hp-stove-faq"))
    )
    await harness.ask(retrieved("Where is my order HP-10023?", kb_chunks("hp-order-tracking")))
    # A high-risk request whose online model fails: a fallback to the offline model.
    object.__setattr__(
        harness.agent.ports, "tiers", ModelTiers(ExtractiveModel(), small=_BrokenModel())
    )
    await harness.ask(retrieved("How do I track my order?", kb_chunks("hp-order-tracking")))
    # Not JSON: dead-lettered.
    await harness.broker.publish(b"{oops", topic=Topic.RETRIEVED.value)

    text = await _scrape(harness)
    samples = scrape(text)

    tokens = samples["gen_ai_client_token_usage_sum"]
    assert {s["gen_ai_token_type"] for s in tokens} == {"input", "output"}
    assert {s["route"] for s in tokens} == {"routine"}
    assert {s["gen_ai_request_model"] for s in tokens} >= {"extractive-v3"}
    # The offline model reports what a chat model would have consumed and produced.
    for kind in ("input", "output"):
        assert (
            sample_value(
                text,
                "gen_ai_client_token_usage_sum",
                gen_ai_request_model="extractive-v3",
                gen_ai_token_type=kind,
            )
            > 0
        )
    durations = samples["gen_ai_client_operation_duration_seconds_count"]
    assert all("route" in s and "gen_ai_request_model" in s for s in durations)
    assert any(s.get("error_type") == "http_400" for s in durations), "the failed call is timed"

    assert (
        sample_value(
            text, "agent_model_fallbacks_total", from_model="small", to_model="extractive-v3"
        )
        == 1
    )
    assert {s["route"] for s in samples["agent_model_fallbacks_total"]} == {"routine"}

    tools = samples["platform_tool_duration_seconds_count"]
    assert {"tool": "order_status", "outcome": "ok"} in [
        {k: s[k] for k in ("tool", "outcome")} for s in tools
    ]

    assert sample_value(text, "agent_citations_total", verdict="supported") >= 1
    assert {s["verdict"] for s in samples["agent_citations_total"]} <= {"supported", "unsupported"}
    assert sample_value(text, "agent_answers_total", cited="true") >= 1
    assert {s["cited"] for s in samples["agent_answers_total"]} <= {"true", "false"}

    assert (
        sample_value(
            text, "platform_dead_letters_total", topic="retrieved", reason="malformed_json"
        )
        == 1
    )
    # No label carries a request id or the question's text.
    assert "HP-10023" not in text and "warranty" not in text


async def test_an_unknown_tool_is_counted_as_unknown_never_by_the_name_asked(
    harness: Harness,
) -> None:
    from agent.toolgate import ToolRequest
    from shared.principal import Principal

    gateway = harness.agent.ports.tools
    principal = Principal(user_id="u-1", tenant_id="harborpine", roles=("customer",))
    request = ToolRequest(
        name="drop_all_tables_for_user_42",
        arguments={},
        principal=principal,
        call_id="c1",
        origin="mcp",
        request_id="r1",
        user_message="hi",
    )

    class _Sink:
        def record(self, *args: object, **kwargs: object) -> None:
            pass

    outcome = await gateway.call(request, _Sink())  # type: ignore[arg-type]
    assert outcome.status == "unknown_tool"
    text = await _scrape(harness)
    assert "drop_all_tables" not in text
    assert (
        sample_value(
            text, "platform_tool_duration_seconds_count", tool="unknown", outcome="refused"
        )
        == 1
    )
