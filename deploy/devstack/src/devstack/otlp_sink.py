"""A minimal OTLP/HTTP trace receiver for the local stack (there is no collector here).

Services export spans to it exactly as they would to an OpenTelemetry Collector
(``TELEMETRY_EXPORTER=otlp``). It appends each span as a JSON line to ``OTLP_SINK_FILE`` and
serves ``GET /traces/{trace_id}``, which is how the demo and the end-to-end test check that
one trace spans all five services.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["build_app", "flatten"]


def flatten(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            spans.extend(
                {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex() or None,
                    "name": span.name,
                    "service": resource.get("service.name"),
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                }
                for span in scope_spans.spans
            )
    return spans


def _value(value: Any) -> Any:
    data = MessageToDict(value)
    return next(iter(data.values()), None) if data else None


def build_app(path: Path) -> FastAPI:
    app = FastAPI(title="OTLP span sink (development only)")
    lock = threading.Lock()
    path.parent.mkdir(parents=True, exist_ok=True)

    @app.post("/v1/traces")
    async def receive(request: Request) -> Response:
        body = await request.body()
        message = ExportTraceServiceRequest()
        if "json" in request.headers.get("content-type", ""):
            from google.protobuf.json_format import Parse

            Parse(body.decode(), message)
        else:
            message.ParseFromString(body)
        lines = [json.dumps(span) for span in flatten(message)]
        with lock, path.open("a") as out:
            out.write("".join(f"{line}\n" for line in lines))
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )

    def read_trace(trace_id: str) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        with path.open() as lines:
            return [s for s in map(json.loads, lines) if s["trace_id"] == trace_id]

    @app.get("/traces/{trace_id}")
    async def get_trace(trace_id: str) -> dict[str, Any]:
        spans = await asyncio.to_thread(read_trace, trace_id)
        return {
            "trace_id": trace_id,
            "services": sorted({s["service"] for s in spans if s["service"]}),
            "spans": spans,
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    port = int(os.environ.get("OTLP_SINK_PORT", "4318"))
    file = Path(os.environ.get("OTLP_SINK_FILE", ".stack/spans.jsonl"))
    uvicorn.run(build_app(file), host="127.0.0.1", port=port, log_level="warning", access_log=False)
