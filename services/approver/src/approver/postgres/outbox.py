"""The transactional outbox: events are written in the transaction of the change they announce.

:func:`enqueue` inserts the serialised event, its Kafka key, headers and destination topic
into ``approvals.outbox`` on the caller's connection, so the event exists if and only if the
change commits. The relay (``approver.postgres.relay``) publishes the rows afterwards.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared.contracts import Event, Topic
from shared.messaging.bus import HEADER_REQUEST_ID, HEADER_SCHEMA, HEADER_TENANT_ID
from shared.settings import KafkaSettings

__all__ = ["CHANNEL", "enqueue", "trace_headers"]

#: NOTIFY channel that wakes the relay when rows commit.
CHANNEL = "approvals_outbox"


def trace_headers() -> dict[str, str]:
    """``traceparent``/``tracestate`` of the current span, to continue the saga's trace later."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


async def enqueue(
    conn: AsyncConnection[Any],
    kafka: KafkaSettings,
    topic: Topic,
    event: Event,
    *,
    trace: dict[str, str] | None = None,
) -> bool:
    """Add ``event`` to the outbox; False if an event with its id is there already.

    The id is unique, so handling a redelivered message enqueues nothing new. The topic is
    stored with the deployment's prefix: a row is published where the writer meant it to go.
    """
    headers = {
        HEADER_REQUEST_ID: str(event.request_id),
        HEADER_TENANT_ID: event.tenant_id,
        HEADER_SCHEMA: event.schema_name(),
        "content-type": "application/json",
        **(trace if trace is not None else trace_headers()),
    }
    cur = await conn.execute(
        "INSERT INTO approvals.outbox (event_id, topic, key, headers, payload)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (
            event.event_id,
            kafka.topic(topic),
            str(event.request_id).encode(),
            Jsonb(headers),
            event.to_bytes(),
        ),
    )
    if cur.rowcount:
        await conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    return cur.rowcount == 1
