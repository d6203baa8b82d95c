"""The FastStream Kafka broker every service uses, built from settings.

Trace context travels in the ``traceparent``/``tracestate`` headers through FastStream's
``KafkaTelemetryMiddleware`` (aiokafka's own instrumentation stays off: it doubles spans and
overwrites ``traceparent``). Consumer tunings come from :class:`KafkaSettings`, so the
differences between the local broker and real Kafka live in configuration, not code.
"""

from __future__ import annotations

from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from shared.settings import KafkaSettings
from shared.telemetry import Telemetry

__all__ = ["consumer_options", "make_broker"]


def make_broker(settings: KafkaSettings, telemetry: Telemetry, *, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap_servers,
        client_id=client_id,
        enable_idempotence=settings.enable_idempotence,
        acks=settings.acks,
        linger_ms=settings.linger_ms,
        request_timeout_ms=settings.request_timeout_ms,
        middlewares=(
            KafkaTelemetryMiddleware(
                tracer_provider=telemetry.tracer_provider,
                meter_provider=telemetry.meter_provider,
            ),
            KafkaPrometheusMiddleware(registry=telemetry.registry, app_name=telemetry.service_name),
        ),
        # EventBus writes one line per handled message, with the saga's request, tenant and
        # trace ids (shared.log_context); FastStream's own per-message lines would repeat it
        # without them.
        logger=None,
    )


def consumer_options(settings: KafkaSettings, *, group_id: str) -> dict[str, Any]:
    """Subscriber arguments for at-least-once delivery.

    Offsets are committed after the handler returns (``AckPolicy.NACK_ON_ERROR``: an
    unexpected exception rewinds to the message so it is redelivered, never skipped). Messages
    that can never succeed are not raised: the dead-letter route handles them and returns.
    """
    return {
        "group_id": group_id,
        "auto_offset_reset": settings.auto_offset_reset,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": settings.max_poll_records,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
    }
