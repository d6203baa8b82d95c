"""The outbox relay: publishes committed outbox rows, each exactly once on its topic.

One relay runs at a time (a PostgreSQL session advisory lock; other replicas wait for it).
It publishes rows in ``seq`` order, waits for the broker's acknowledgement, then marks them
published together with a checkpoint per topic partition: the offset below which every
outbox event is either marked or was never there.

A crash between the acknowledgement and the mark leaves rows that are on the topic but not
marked. So before publishing anything, a relay that has just taken over (or whose send
failed, when it cannot know what landed) reads each topic of its unmarked rows from the
checkpoints to the end, marks those it finds, and only then publishes the rest. Nothing of
ours can sit beyond the end it read: the previous holder is gone (its lock went with its
session) and this one has not sent since.

What this does not cover, and what Kafka transactions would: a previous relay that lost
its lock but is still alive (a zombie that kept a send in flight past the takeover), and
duplicates made inside the producer by its own retries when idempotence is off (Tansu). A
transactional producer fences zombies by epoch, and the idempotent producer removes retry
duplicates; with those the scan is still what finds a send acknowledged before a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from opentelemetry import propagate, trace

from shared.db import Pool
from shared.settings import KafkaSettings

from ..settings import RelaySettings
from ..testing.failpoints import Failpoints
from .outbox import CHANNEL

__all__ = ["OutboxRelay"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("approver.relay")

#: Advisory lock naming the single active relay of a database.
RELAY_LOCK = 7215002


@dataclass(frozen=True)
class _Row:
    seq: int
    event_id: uuid.UUID
    topic: str
    key: bytes
    headers: dict[str, str]
    payload: bytes


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        pool: Pool,
        kafka: KafkaSettings,
        settings: RelaySettings,
        failpoints: Failpoints,
        *,
        client_id: str = "approver-relay",
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._kafka = kafka
        self._settings = settings
        self._failpoints = failpoints
        self._client_id = client_id
        self._wake = asyncio.Event()
        #: Set while this process holds the lock and has reconciled the topics with the outbox.
        self.active = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Take the lock when it is free, relay while holding it; forever."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as lock_conn:
                    if not await _try_lock(lock_conn):
                        await asyncio.sleep(self._settings.poll_interval_s)
                        continue
                    await lock_conn.execute(f"LISTEN {CHANNEL}")
                    await self._relay_while_locked(lock_conn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay stopped; starting over")
                await asyncio.sleep(self._settings.poll_interval_s)
            finally:
                self.active.clear()

    async def _relay_while_locked(self, lock_conn: psycopg.AsyncConnection[Any]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=self._client_id,
            acks=self._kafka.acks,
            enable_idempotence=self._kafka.enable_idempotence,
            linger_ms=self._kafka.linger_ms,
            request_timeout_ms=self._kafka.request_timeout_ms,
        )
        listener: asyncio.Task[None] | None = None
        try:
            # Inside the try: a stop while the producer connects must still close it.
            await producer.start()
            listener = asyncio.create_task(self._listen(lock_conn), name="approver-relay-listen")
            await self.reconcile()
            self.active.set()
            while not listener.done():
                if await self._publish_batch(producer):
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.poll_interval_s)
            listener.result()  # the lock connection is gone: re-raise why
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener
            await producer.stop()

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for _ in conn.notifies():
            self._wake.set()

    # ------------------------------------------------------------------ publishing
    async def _publish_batch(self, producer: AIOKafkaProducer) -> bool:
        """Publish the next batch; True if there was one."""
        rows = await self._unpublished(self._settings.batch_size)
        if not rows:
            return False
        await self._ensure_checkpoints(producer, {r.topic for r in rows})
        self._failpoints.hit("relay.before_publish")
        try:
            landed = await self._send(producer, rows)
        except Exception:
            # Some of the batch may have landed: find out from the topics before resending.
            log.warning("outbox publish failed; reconciling before retrying", exc_info=True)
            await asyncio.sleep(self._settings.poll_interval_s)
            await self.reconcile()
            return True
        self._failpoints.hit("relay.after_publish")
        await self._mark(landed)
        self._failpoints.hit("relay.after_mark")
        return True

    async def _send(
        self, producer: AIOKafkaProducer, rows: Sequence[_Row]
    ) -> list[tuple[uuid.UUID, str, int, int]]:
        futures = []
        spans = []
        for row in rows:
            # The send span continues the trace of the change that enqueued the row.
            parent = propagate.extract(row.headers)
            span = tracer.start_span(
                f"{row.topic} send",
                context=parent,
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": row.topic,
                    "messaging.kafka.message.key": row.key.decode(errors="replace"),
                    "messaging.message.id": str(row.event_id),
                },
            )
            headers = {
                k: v for k, v in row.headers.items() if k not in ("traceparent", "tracestate")
            }
            propagate.inject(headers, context=trace.set_span_in_context(span))
            spans.append(span)
            futures.append(
                await producer.send(
                    row.topic,
                    row.payload,
                    key=row.key,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
            )
        try:
            results: list[RecordMetadata] = await asyncio.gather(*futures)
        finally:
            for span in spans:
                span.end()
        return [
            (row.event_id, meta.topic, meta.partition, meta.offset)
            for row, meta in zip(rows, results, strict=True)
        ]

    async def _unpublished(self, limit: int) -> list[_Row]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT seq, event_id, topic, key, headers, payload FROM approvals.outbox"
                " WHERE published_at IS NULL ORDER BY seq LIMIT %s",
                (limit,),
            )
            rows = _dicts(await cur.fetchall())
            await conn.rollback()
        return [
            _Row(
                r["seq"],
                r["event_id"],
                r["topic"],
                bytes(r["key"]),
                dict(r["headers"]),
                bytes(r["payload"]),
            )
            for r in rows
        ]

    async def _mark(self, landed: Sequence[tuple[uuid.UUID, str, int, int]]) -> None:
        """Mark rows published where they landed and move the checkpoints past them.

        One relay sends at a time and waits for each batch, so the last mark of a partition
        is its highest; plain assignment (not GREATEST) also recovers from a topic that was
        recreated empty (a Tansu restart), where offsets start again from zero.
        """
        ends: dict[tuple[str, int], int] = {}
        for _, topic, partition, offset in landed:
            ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.executemany(
                "UPDATE approvals.outbox SET published_at = now(), partition = %s,"
                ' "offset" = %s WHERE event_id = %s AND published_at IS NULL',
                [(p, o, e) for e, _, p, o in landed],
            )
            await cur.executemany(
                "INSERT INTO approvals.relay_checkpoints (topic, partition, next_offset)"
                " VALUES (%s, %s, %s) ON CONFLICT (topic, partition) DO UPDATE SET"
                " next_offset = EXCLUDED.next_offset",
                [(t, p, o) for (t, p), o in ends.items()],
            )

    async def _ensure_checkpoints(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Give every partition we may send to a checkpoint before the first send to it.

        Its end offset before any send of ours is a safe start for a later scan. (Tansu
        reports the base offset of the last batch there, which is lower: also safe.)
        """
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT topic, partition FROM approvals.relay_checkpoints WHERE topic = ANY(%s)",
                (sorted(topics),),
            )
            known = {(r["topic"], r["partition"]) for r in _dicts(await cur.fetchall())}
            await conn.rollback()
        missing = []
        for topic in topics:
            partitions = await producer.partitions_for(topic)
            missing += [TopicPartition(topic, p) for p in partitions if (topic, p) not in known]
        if not missing:
            return
        consumer = self._consumer()
        await consumer.start()
        try:
            ends = await consumer.end_offsets(missing)
        finally:
            await consumer.stop()
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            await cur.executemany(
                "INSERT INTO approvals.relay_checkpoints (topic, partition, next_offset)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(tp.topic, tp.partition, offset) for tp, offset in ends.items()],
            )

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(self) -> int:
        """Mark the unmarked rows that are on their topic already; returns how many."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT o.event_id, o.topic FROM approvals.outbox o WHERE o.published_at IS NULL"
            )
            unmarked: dict[str, set[uuid.UUID]] = {}
            for r in _dicts(await cur.fetchall()):
                unmarked.setdefault(r["topic"], set()).add(r["event_id"])
            cur = await conn.execute(
                "SELECT topic, partition, next_offset FROM approvals.relay_checkpoints"
                " WHERE topic = ANY(%s)",
                (sorted(unmarked),),
            )
            starts = {
                TopicPartition(r["topic"], r["partition"]): r["next_offset"]
                for r in _dicts(await cur.fetchall())
            }
            await conn.rollback()
        if not starts:
            return 0  # never sent to these topics: nothing of ours can be there
        found, ends = await self._scan(starts, unmarked)
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if found:
                await cur.executemany(
                    "UPDATE approvals.outbox SET published_at = now(), partition = %s,"
                    ' "offset" = %s WHERE event_id = %s AND published_at IS NULL',
                    [(p, o, e) for e, (p, o) in found.items()],
                )
            await cur.executemany(
                "UPDATE approvals.relay_checkpoints SET next_offset = %s"
                " WHERE topic = %s AND partition = %s",
                [(o, tp.topic, tp.partition) for tp, o in ends.items()],
            )
        if found:
            log.warning("found %d outbox events already published; marked, not resent", len(found))
        return len(found)

    async def _scan(
        self, starts: dict[TopicPartition, int], wanted: dict[str, set[uuid.UUID]]
    ) -> tuple[dict[uuid.UUID, tuple[int, int]], dict[TopicPartition, int]]:
        """Read each partition from its checkpoint to its high watermark.

        The end is the high watermark of a fetch made during this scan (a fresh consumer, so
        no stale value), not ListOffsets, which Tansu answers too low.
        """
        found: dict[uuid.UUID, tuple[int, int]] = {}
        ends: dict[TopicPartition, int] = {}
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(list(starts))
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
            async with asyncio.timeout(self._settings.scan_timeout_s):
                while len(ends) < len(starts):
                    batches = await consumer.getmany(timeout_ms=100)
                    for tp, records in batches.items():
                        for record in records:
                            event_id = _event_id(record.value)
                            if event_id is not None and event_id in wanted.get(tp.topic, ()):
                                found[event_id] = (tp.partition, record.offset)
                    for tp in starts:
                        high = consumer.highwater(tp)
                        if tp not in ends and high is not None:
                            position = await consumer.position(tp)
                            if position >= high:
                                ends[tp] = position
        finally:
            await consumer.stop()
        return found, ends

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._kafka.bootstrap_servers,
            client_id=f"{self._client_id}-scan",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._kafka.fetch_max_wait_ms,
            request_timeout_ms=self._kafka.request_timeout_ms,
        )


async def _try_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,))
    row = await cur.fetchone()
    return bool(row and row[0])


def _event_id(value: bytes | None) -> uuid.UUID | None:
    try:
        raw = json.loads(value or b"null")
        return uuid.UUID(raw["event_id"]) if isinstance(raw, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def _dicts(rows: Sequence[object]) -> list[dict[str, Any]]:
    """Rows of the pool's connections, which are built with ``dict_row``."""
    return cast(list[dict[str, Any]], rows)
