"""A minimal OTLP/HTTP trace receiver for the local stack (there is no collector here).

Services export spans to it exactly as they would to an OpenTelemetry Collector
(``TELEMETRY_EXPORTER=otlp``). It appends each span as a JSON line to ``OTLP_SINK_FILE`` and
serves ``GET /traces/{trace_id}``, which is how the demo and the end-to-end test check that
one trace spans all five services.

The file is bounded: when the next batch would take it past ``OTLP_SINK_MAX_BYTES`` (20 MB)
it is rotated like a log (``spans.jsonl`` -> ``spans.jsonl.1`` -> ... ``.N``, the oldest
dropped), keeping ``OTLP_SINK_BACKUPS`` (2) old files; ``GET /traces/{id}`` reads the old files
and the current one, so a trace written across a rotation is still served whole. Without this,
an afternoon of local use wrote a 113 MB file that every trace lookup read from the start.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from .trace_view import recent_traces, render_index, render_trace

__all__ = [
    "DEFAULT_BACKUPS",
    "DEFAULT_MAX_BYTES",
    "SpanFile",
    "build_app",
    "flatten",
    "limits_from_env",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_BACKUPS = 2


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
                    "status": {"code": _STATUS.get(span.status.code, "UNSET")},
                    "links": [
                        {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                        for link in span.links
                    ],
                }
                for span in scope_spans.spans
            )
    return spans


_STATUS = {Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}


def _value(value: Any) -> Any:
    data = MessageToDict(value)
    return next(iter(data.values()), None) if data else None


class SpanFile:
    """Span lines appended to a size-bounded file with numbered backups."""

    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise ValueError("max_bytes must be positive and backups not negative")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        # Appends and rotations from the request threads must not interleave.
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        """Oldest first: ``.N`` ... ``.1``, then the current file."""
        old = [Path(f"{self.path}.{i}") for i in range(self.backups, 0, -1)]
        return [*old, self.path]

    def append(self, lines: list[str]) -> None:
        data = "".join(f"{line}\n" for line in lines).encode()
        if not data:
            return
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            # A batch is never split across files; one larger than max_bytes gets a file alone.
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with self.path.open("ab") as out:
                out.write(data)

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        files = self.files()  # oldest first: the oldest is overwritten by the next one
        for older, newer in itertools.pairwise(files):
            if newer.exists():
                newer.replace(older)

    def read(self, trace_id: str) -> list[dict[str, Any]]:
        # Open every file under the lock (an open file survives being renamed by a rotation),
        # then read without it, so a lookup never blocks the exporters.
        with self._lock:
            handles = []
            for path in self.files():
                try:
                    handles.append(path.open("rb"))
                except FileNotFoundError:
                    continue
        spans: list[dict[str, Any]] = []
        needle = trace_id.encode()
        for handle in handles:
            with handle:
                # A substring test first: parsing every line of 60 MB to find a few is slow.
                spans.extend(
                    span
                    for line in handle
                    if needle in line and (span := json.loads(line))["trace_id"] == trace_id
                )
        return spans

    def tail(self, max_bytes: int = 4 * 1024 * 1024) -> list[dict[str, Any]]:
        """The spans in the last ``max_bytes`` of the current file (the recent traces)."""
        with self._lock:
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                return []
        with handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            if size > max_bytes:
                handle.readline()  # a partial line
            return [json.loads(line) for line in handle if line.strip()]


def build_app(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS
) -> FastAPI:
    app = FastAPI(title="OTLP span sink (development only)")
    spans = SpanFile(path, max_bytes=max_bytes, backups=backups)

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
        await asyncio.to_thread(spans.append, lines)
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf"
        )

    @app.get("/traces/{trace_id}")
    async def get_trace(trace_id: str) -> dict[str, Any]:
        found = await asyncio.to_thread(spans.read, trace_id)
        return {
            "trace_id": trace_id,
            "services": sorted({s["service"] for s in found if s["service"]}),
            "spans": found,
        }

    @app.get("/traces")
    async def list_traces(limit: int = 50) -> dict[str, Any]:
        recent = await asyncio.to_thread(spans.tail)
        return {"traces": recent_traces(recent, min(max(limit, 1), 500))}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        recent = await asyncio.to_thread(spans.tail)
        return HTMLResponse(render_index(recent_traces(recent)))

    @app.get("/ui/{trace_id}", response_class=HTMLResponse)
    async def trace_page(trace_id: str) -> HTMLResponse:
        if not (len(trace_id) == 32 and all(c in "0123456789abcdef" for c in trace_id)):
            return HTMLResponse(render_trace(trace_id[:64], []), status_code=404)
        return HTMLResponse(render_trace(trace_id, await asyncio.to_thread(spans.read, trace_id)))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def limits_from_env(env: Mapping[str, str]) -> tuple[int, int]:
    """``OTLP_SINK_MAX_BYTES`` and ``OTLP_SINK_BACKUPS``, with the defaults."""
    max_bytes = int(env.get("OTLP_SINK_MAX_BYTES", str(DEFAULT_MAX_BYTES)))
    backups = int(env.get("OTLP_SINK_BACKUPS", str(DEFAULT_BACKUPS)))
    return max_bytes, backups


if __name__ == "__main__":
    port = int(os.environ.get("OTLP_SINK_PORT", "4318"))
    file = Path(os.environ.get("OTLP_SINK_FILE", ".stack/spans.jsonl"))
    max_bytes, backups = limits_from_env(os.environ)
    uvicorn.run(
        build_app(file, max_bytes=max_bytes, backups=backups),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
