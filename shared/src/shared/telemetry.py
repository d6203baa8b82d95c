"""Tracing, metrics and logging, set up once per process by the composition root.

Spans leave through OTLP/HTTP (to a collector in production, to the dev stack's span sink
locally). Metrics are exposed in Prometheus format on each service's ``/metrics``: FastStream's
Prometheus middleware and OpenTelemetry instruments (GenAI token usage, ...) share one registry;
HTTP server metrics come from OpenTelemetry's FastAPI instrumentation (:func:`instrument_http`).
Every metric, its owner and labels: ``docs/metrics.md``.

Logs go to stderr through one handler that bounds the rate of repeated records
(:class:`RateLimitFilter`: during a broker outage aiokafka logs the same connection error in a
tight loop, hundreds of lines a second, which buried everything else and filled disks), redacts
personal data from the message, the traceback and any extra fields, and stamps each record with
the service, request, tenant, trace and span it belongs to (:mod:`shared.log_context`). Lines
are JSON objects (``TELEMETRY_LOG_FORMAT=json``, the default and what compose runs) or one
readable line with the ids appended (``text``, the local stack's ``deploy/local.env``); see
``docs/logging.md``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status
from prometheus_client import CollectorRegistry
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from shared import log_context
from shared.settings import TelemetrySettings

__all__ = ["RateLimitFilter", "Telemetry", "current_trace_id", "instrument_http", "setup"]

#: Redacts personal data and secrets from a string (see shared.guardrails.pii).
Redactor = Callable[[str], str]


@dataclass(frozen=True)
class Telemetry:
    service_name: str
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    registry: CollectorRegistry

    def tracer(self, name: str) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class _RedactingExporter(SpanExporter):
    """Scrubs string attributes, event attributes and the status message before spans leave
    the process, so nothing personal reaches the collector even if an instrumentation library
    recorded it (an exception event quotes the input that caused it).

    Ended spans are immutable, so each one is exported as a redacted copy built with the SDK's
    public ``ReadableSpan`` and ``Event`` constructors; the span the process holds is left as
    it was. In compose the Collector's redaction processor is a second line.
    """

    def __init__(self, inner: SpanExporter, redact: Redactor) -> None:
        self._inner = inner
        self._redact = redact

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._scrub(span) for span in spans])

    def _scrub_attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            k: self._redact(v) if isinstance(v, str) else v for k, v in (attributes or {}).items()
        }

    def _scrub(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self._redact(status.description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._scrub_attributes(span.attributes),
            events=[
                Event(e.name, self._scrub_attributes(e.attributes), e.timestamp)
                for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _RedactingFilter(logging.Filter):
    """Redact what a formatter would print: the message, the traceback, extra fields.

    The traceback is formatted here (and ``exc_info`` dropped) because exception messages often
    quote the input that caused them; the JSON formatter would otherwise format it afresh.
    """

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # malformed arguments: keep what can be shown, redacted
            message = str(record.msg)
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                record.__dict__[key] = self._redact(value)
        return True


_TRACEBACKS = logging.Formatter()
#: What every record has; anything else was passed with ``extra=`` and is printed by the JSON
#: formatter, so it is redacted like the message.
_STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime"}


class RateLimitFilter(logging.Filter):
    """Let a repeated log record through at most once per ``interval_s``.

    Records are "the same" when logger, level, message template (``record.msg`` before
    ``%`` formatting) and request id (:mod:`shared.log_context`) match, so one error with
    changing arguments (a host, an attempt number) counts as one, while the same line written
    for many sagas (one per handled message) is not mistaken for a flood. The first record
    passes; while the interval runs, repeats are dropped and counted; the first repeat after
    it passes with ``(suppressed K similar)`` appended, so the volume stays visible. Counts of
    a key that never repeats again are not reported.

    The table of keys is bounded (least recently seen keys are forgotten), so messages built
    without a template (f-strings) cannot grow it without limit. Thread-safe: handlers run
    filters before taking their own lock.
    """

    def __init__(
        self,
        interval_s: float = 5.0,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> [when the last record passed, records dropped since]
        self._seen: OrderedDict[tuple[str, int, str, str | None], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        template = (
            record.msg if isinstance(record.msg, str) else f"<{type(record.msg).__qualname__}>"
        )
        context = log_context.current()
        key = (record.name, record.levelno, template, context.request_id if context else None)
        now = self._clock()
        with self._lock:
            state = self._seen.get(key)
            if state is None:
                self._seen[key] = [now, 0]
                if len(self._seen) > self._max_keys:
                    self._seen.popitem(last=False)
                return True
            self._seen.move_to_end(key)
            if now - state[0] < self.interval_s:
                state[1] += 1
                return False
            suppressed = int(state[1])
            state[0], state[1] = now, 0
        if suppressed:
            try:
                message = record.getMessage()
            except Exception:  # malformed arguments: leave the record to the handler's own report
                return True
            record.msg = f"{message} (suppressed {suppressed} similar)"
            record.args = None
        return True


def setup(
    settings: TelemetrySettings,
    service_name: str,
    *,
    redact: Redactor | None = None,
    span_exporter: SpanExporter | None = None,
    log_repeat_interval_s: float = 5.0,
) -> Telemetry:
    """Build tracer and meter providers for ``service_name`` and configure logging.

    ``span_exporter`` lets tests capture spans in memory; otherwise ``settings.exporter`` decides.
    A log record repeated within ``log_repeat_interval_s`` is dropped and counted (see
    :class:`RateLimitFilter`).
    Providers are returned, not only installed globally, so several services can live in one
    test process without sharing a provider.
    """
    resource = Resource.create({"service.name": service_name, "service.namespace": "support"})
    tracer_provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    exporter = span_exporter or _exporter_from(settings)
    if exporter is not None:
        if redact is not None:
            exporter = _RedactingExporter(exporter, redact)
        # One export a second at most (unless 512 spans are waiting): each export is an HTTP
        # post with protobuf encoding, and at 200 ms they cost a tenth of a busy service's CPU.
        tracer_provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=1000, max_export_batch_size=512)
        )
    registry = CollectorRegistry()
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[PrometheusMetricReader(registry=registry, disable_target_info=True)],
    )
    _configure_logging(settings, service_name, redact, log_repeat_interval_s)
    _install_globally(tracer_provider, meter_provider)
    return Telemetry(service_name, tracer_provider, meter_provider, registry)


def _install_globally(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    """Make these the process-wide providers, so module-level ``trace.get_tracer`` works.

    A process runs one service; when tests build several services in one process, the first
    one's providers stay global (OpenTelemetry allows setting them once).
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(tracer_provider)
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(meter_provider)


def _exporter_from(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint
        return OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None)
    if settings.exporter == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    return None


#: The fields of a JSON line, in this order; ``exc_info`` follows when there is a traceback.
_JSON_FIELDS = (
    "asctime",
    "levelname",
    "service",
    "name",
    "message",
    "request_id",
    "tenant_id",
    "trace_id",
    "span_id",
)
_JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def _configure_logging(
    settings: TelemetrySettings,
    service: str,
    redact: Redactor | None,
    repeat_interval_s: float,
) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # First: it keys on the message template, which the redacting filter replaces with the
    # formatted text (and dropping a record early saves redacting it).
    handler.addFilter(RateLimitFilter(repeat_interval_s))
    if redact is not None:
        handler.addFilter(_RedactingFilter(redact))
    # Last: ids are not personal data, and some (hex trace ids) look like secrets to a redactor.
    handler.addFilter(log_context.ContextFilter(service))
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter(
            list(_JSON_FIELDS),
            rename_fields=_JSON_NAMES,
            # uvicorn's records carry an ANSI-coloured copy of their message.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
        # ISO 8601 in UTC with milliseconds ("2026-12-06T21:13:08.166Z"): lines of services
        # on machines in other zones sort and join as they are.
        formatter.converter = time.gmtime
        formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
        formatter.default_msec_format = "%s.%03dZ"
    else:
        formatter = log_context.TextFormatter(
            "%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s"
        )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


#: Not measured: probes and scrapes would outnumber the real requests and tell nothing.
HTTP_EXCLUDED_URLS = "/healthz$,/metrics$"


def instrument_http(app: FastAPI, telemetry: Telemetry) -> None:
    """HTTP server metrics for ``app`` from OpenTelemetry's FastAPI instrumentation.

    The stable HTTP semantic conventions give ``http.server.request.duration`` (seconds) with
    ``http.route`` (the route template, never the raw path: bounded), ``http.request.method``
    and ``http.response.status_code``; the installed instrumentation still defaults to the old
    names unless ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for them, so it is set here before
    the first app is instrumented (an operator's own value, e.g. ``http/dup``, is kept).

    Spans stay off (a no-op tracer): the saga's root span is the gateway's ``chat.request``,
    which carries ``enduser.id``; an HTTP server span above it would take that place.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=trace.NoOpTracerProvider(),
        meter_provider=telemetry.meter_provider,
        excluded_urls=HTTP_EXCLUDED_URLS,
    )


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
