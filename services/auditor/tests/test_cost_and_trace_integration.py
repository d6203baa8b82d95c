"""``cost report`` and ``trace``, read from the real (migrated) audit log."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from auditor.cost_report import Grouping, cost_rows, render
from auditor.trace_timeline import audit_steps, rows_of
from auditor.trace_timeline import render as render_timeline
from shared.contracts import AuditRecorded, utcnow

from .conftest import AuditSandbox

pytestmark = pytest.mark.integration


def _draft_step(
    tenant: str, items: list[dict[str, Any]], *, cached: bool = False, request_id: Any = None
) -> AuditRecorded:
    return AuditRecorded(
        event_id=uuid.uuid4(),
        request_id=request_id or uuid.uuid4(),
        tenant_id=tenant,
        occurred_at=utcnow(),
        service="agent",
        action="draft.produced",
        actor="u",
        trace_id="ab" * 16,
        details={
            "kind": "answer",
            "model": "m",
            "served_from_cache": cached,
            "cost_usd": sum(i["usd"] for i in items),
            "cost": items,
        },
    )


def _item(model: str, usd: float, tin: int = 100, tout: int = 10) -> dict[str, Any]:
    return {
        "model": model,
        "operation": "chat",
        "input_tokens": tin,
        "output_tokens": tout,
        "usd": usd,
        "priced": True,
    }


async def test_cost_report_groups_by_tenant_model_and_day(sandbox: AuditSandbox) -> None:
    a, b = f"ta{uuid.uuid4().hex[:6]}", f"tb{uuid.uuid4().hex[:6]}"
    big, small = f"big-{a}", f"small-{a}"
    await sandbox.append(
        [
            _draft_step(a, [_item(big, 0.01), _item(small, 0.001)]),
            _draft_step(a, [_item(small, 0.002)], cached=True),
            _draft_step(b, [_item(big, 0.02)]),
            _draft_step(b, []),  # a blocked request: counted, free
        ]
    )
    since = sandbox.started_at - timedelta(seconds=1)
    by_tenant = {r.key: r for r in await cost_rows(sandbox.pool, Grouping.TENANT, since)}
    assert by_tenant[a].requests == 2 and by_tenant[a].cached == 1
    assert by_tenant[a].usd == pytest.approx(0.013)
    assert by_tenant[a].input_tokens == 300 and by_tenant[a].output_tokens == 30
    assert by_tenant[b].requests == 2 and by_tenant[b].usd == pytest.approx(0.02)
    by_model = {r.key: r for r in await cost_rows(sandbox.pool, Grouping.MODEL, since)}
    assert by_model[big].usd == pytest.approx(0.03) and by_model[big].requests == 2
    assert by_model[small].usd == pytest.approx(0.003)
    by_day = await cost_rows(sandbox.pool, Grouping.DAY, since)
    today = utcnow().strftime("%Y-%m-%d")
    assert any(r.key == today and r.usd >= 0.033 - 1e-9 for r in by_day)
    # Nothing recorded after a future --since.
    later = await cost_rows(sandbox.pool, Grouping.TENANT, utcnow() + timedelta(hours=1))
    assert a not in {r.key for r in later}
    assert "total" in render(list(by_tenant.values()), Grouping.TENANT)


async def test_trace_timeline_from_the_audit_log_and_spans(sandbox: AuditSandbox) -> None:
    rid = uuid.uuid4()
    tenant = f"tt{uuid.uuid4().hex[:6]}"
    retrieved = AuditRecorded(
        event_id=uuid.uuid4(),
        request_id=rid,
        tenant_id=tenant,
        occurred_at=utcnow(),
        service="retriever",
        action="retrieval.completed",
        actor="u",
        trace_id="cd" * 16,
        details={"cache_hit": True, "chunks": 3},
    )
    draft = _draft_step(tenant, [_item("gpt-4.1-mini", 0.0004)], cached=True, request_id=rid)
    await sandbox.append([retrieved, draft])
    steps = await audit_steps(sandbox.pool, rid)
    assert [s.action for s in steps] == ["retrieval.completed", "draft.produced"]
    text = render_timeline(rows_of(steps, []), steps)
    assert "retrieval:hit" in text and "answer:hit" in text and "$0.000400" in text
    spans = [
        {
            "span_id": "1",
            "parent_span_id": None,
            "name": "chat.request",
            "service": "gateway",
            "start_ns": 1_000_000_000,
            "end_ns": 1_900_000_000,
            "attributes": {},
        },
        {
            "span_id": "2",
            "parent_span_id": "1",
            "name": "chat extractive-v3",
            "service": "agent",
            "start_ns": 1_100_000_000,
            "end_ns": 1_150_000_000,
            "attributes": {
                "gen_ai.request.model": "extractive-v3",
                "gen_ai.usage.input_tokens": "812",
                "gen_ai.usage.output_tokens": "40",
            },
        },
        {
            "span_id": "3",
            "parent_span_id": "1",
            "name": "invoke_agent",
            "service": "agent",
            "start_ns": 1_090_000_000,
            "end_ns": 1_200_000_000,
            "attributes": {"platform.cost_usd": 0.0004, "platform.answer_cache_hit": False},
        },
    ]
    rows = rows_of(steps, spans)
    assert [r.step for r in rows] == ["chat.request", "invoke_agent", "chat extractive-v3"]
    chat = rows[2]
    assert chat.depth == 1 and chat.tokens == "812/40" and chat.duration_ms == pytest.approx(50)
    assert rows[1].cost == "$0.000400" and rows[1].cache == "answer:miss"
