"""The span sink keeps its file bounded and still serves a trace written across rotations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from devstack.otlp_sink import SpanFile, build_app, limits_from_env

pytestmark = pytest.mark.unit

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "4bf92f3577b34da6a3ce929d0e0e4736"


def _export(trace_id: str, service: str, count: int) -> bytes:
    spans = [
        Span(
            trace_id=bytes.fromhex(trace_id),
            span_id=os.urandom(8),
            name=f"{service} step {i}",
            start_time_unix_nano=i,
            end_time_unix_nano=i + 1,
        )
        for i in range(count)
    ]
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def test_the_span_file_rotates_and_a_trace_across_rotations_is_served_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spans.jsonl"
    client = TestClient(build_app(path, max_bytes=2500, backups=2))
    services = ["gateway", "retriever", "agent", "approver", "auditor"]
    for service in services:  # one saga after the other, each with some noise from another
        for trace_id in (TRACE, OTHER):
            response = client.post(
                "/v1/traces",
                content=_export(trace_id, service, 5),
                headers={"content-type": "application/x-protobuf"},
            )
            assert response.status_code == 200

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "spans.jsonl",
        "spans.jsonl.1",
        "spans.jsonl.2",
    ], "rotated, two old files kept, the oldest dropped"
    kept = [path.with_name("spans.jsonl.2"), path.with_name("spans.jsonl.1"), path]
    assert all(f.stat().st_size <= 2500 for f in kept)
    per_file = [[json.loads(line) for line in f.open()] for f in kept]
    on_disk = [s for spans in per_file for s in spans if s["trace_id"] == TRACE]
    assert all(any(s["trace_id"] == TRACE for s in spans) for spans in per_file), (
        "the trace is spread over all three files"
    )
    assert len(on_disk) < 25, "its first spans were dropped with the oldest file"

    trace = client.get(f"/traces/{TRACE}").json()

    assert trace["spans"] == on_disk, "every kept span of the trace, oldest file first"
    assert trace["services"] == sorted({s["service"] for s in on_disk})
    assert {s["service"] for s in on_disk} >= {"auditor"}


def test_a_trace_spread_over_every_kept_file_is_complete(tmp_path: Path) -> None:
    spans = SpanFile(tmp_path / "spans.jsonl", max_bytes=300, backups=2)
    for i in range(3):
        spans.append([f'{{"trace_id": "{TRACE}", "service": "s{i}", "pad": "{"x" * 200}"}}'])
    assert [p.exists() for p in spans.files()] == [True, True, True]
    assert [s["service"] for s in spans.read(TRACE)] == ["s0", "s1", "s2"]
    spans.append([f'{{"trace_id": "{OTHER}", "service": "s3"}}'])
    assert [s["service"] for s in spans.read(TRACE)] == ["s1", "s2"], "oldest file dropped"


def test_without_backups_the_file_is_truncated(tmp_path: Path) -> None:
    spans = SpanFile(tmp_path / "spans.jsonl", max_bytes=100, backups=0)
    spans.append([f'{{"trace_id": "{TRACE}", "n": 1, "pad": "{"x" * 80}"}}'])
    spans.append([f'{{"trace_id": "{TRACE}", "n": 2, "pad": "{"x" * 80}"}}'])
    assert [s["n"] for s in spans.read(TRACE)] == [2]
    assert list(tmp_path.iterdir()) == [tmp_path / "spans.jsonl"]


def test_the_limits_come_from_the_environment() -> None:
    assert limits_from_env({}) == (20 * 1024 * 1024, 2)
    assert limits_from_env({"OTLP_SINK_MAX_BYTES": "1234", "OTLP_SINK_BACKUPS": "5"}) == (1234, 5)


def test_the_viewer_lists_recent_traces_and_draws_one_with_links_and_facts(
    tmp_path: Path,
) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    client = TestClient(build_app(tmp_path / "spans.jsonl"))
    decision = Span(
        trace_id=bytes.fromhex(OTHER),
        span_id=os.urandom(8),
        name="approval.decide",
        start_time_unix_nano=10,
        end_time_unix_nano=20,
        links=[Span.Link(trace_id=bytes.fromhex(TRACE), span_id=os.urandom(8))],
        attributes=[KeyValue(key="approval.decision", value=AnyValue(string_value="approve"))],
    )
    chat = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=os.urandom(8),
        name="chat <script>",
        start_time_unix_nano=1_000,
        end_time_unix_nano=5_000,
        status=Status(code=Status.STATUS_CODE_ERROR),
        attributes=[KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=812))],
    )
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="agent"))]
    )
    body = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[decision, chat])])
        ]
    ).SerializeToString()
    assert client.post("/v1/traces", content=body).status_code == 200
    listed = client.get("/traces").json()["traces"]
    assert {t["trace_id"] for t in listed} == {TRACE, OTHER}
    page = client.get(f"/ui/{TRACE}").text
    assert "in=812" in page and "bar err" in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # span names are escaped
    linked = client.get(f"/ui/{OTHER}").text
    assert f"/ui/{TRACE}" in linked and "decision=approve" in linked
    assert f"/ui/{TRACE}" in client.get("/").text
    assert client.get("/ui/not-a-trace").status_code == 404
    [span] = client.get(f"/traces/{OTHER}").json()["spans"]
    assert span["links"][0]["trace_id"] == TRACE
