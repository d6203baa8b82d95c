"""What sits on the dead-letter topics, and replaying it once the cause is fixed.

A message that cannot be handled goes to ``<topic>.dlq`` with the reason in its headers
(``shared.messaging.bus``). ``platform-dlq list`` shows every such message (topic, partition,
offset, time, key, reason, whether it was replayed); ``platform-dlq replay`` republishes the
chosen ones to their source topic, with their original key and headers, so the consumer that
refused them handles them again.

A replay is idempotent: each dead-lettered message is replayed at most once. The replay is
recorded in ``ops.dlq_replays`` in a transaction that commits only after the broker
acknowledged the publish; a message already recorded is skipped (``--again`` overrides, for a
replay that failed a second time and was dead-lettered anew under a new offset, that one is a
new message anyway). A crash between the acknowledgement and the commit can publish one
message twice: every consumer drops a redelivered ``event_id``, which is the platform's rule for
any message, so this costs a duplicate on the topic, never a duplicate effect.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.contracts import DLQ_SUFFIX, Topic, dead_letter_topic
from shared.settings import DatabaseSettings, KafkaSettings

__all__ = ["DeadLetter", "app", "read_dead_letters", "replay"]

#: Headers the dead-letter route adds; a replay strips them before republishing.
_DLQ_HEADERS = (
    "dlq_reason",
    "dlq_detail",
    "dlq_source_topic",
    "dlq_partition",
    "dlq_offset",
    "dlq_consumer_group",
    "dlq_service",
)


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    source_topic: str
    reason: str
    detail: str
    service: str
    request_id: str | None
    event_id: str | None
    replayed: bool = False

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def ref(self) -> str:
        """``topic:partition:offset``, how ``replay --ref`` names a message."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"


async def read_dead_letters(
    kafka: KafkaSettings, topics: Iterable[str] | None = None, *, timeout_s: float = 30.0
) -> list[tuple[DeadLetter, ConsumerRecord[bytes, bytes]]]:
    """Everything on the dead-letter topics (all five by default), oldest first per partition.

    Reads each partition from the beginning to its high watermark with a consumer of no group
    (nothing is committed, nobody else's position moves).
    """
    names = list(topics or (kafka.topic(dead_letter_topic(t.value)) for t in Topic))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=min(kafka.fetch_max_wait_ms, 100),
        request_timeout_ms=kafka.request_timeout_ms,
    )
    await consumer.start()
    found: list[tuple[DeadLetter, ConsumerRecord[bytes, bytes]]] = []
    try:
        partitions: list[TopicPartition] = []
        for name in names:
            known = await _partitions(consumer, name)
            partitions += [TopicPartition(name, p) for p in sorted(known)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        done: set[TopicPartition] = set()
        async with asyncio.timeout(timeout_s):
            while len(done) < len(partitions):
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    found += [(_letter(r), r) for r in records]
                for tp in partitions:
                    high = consumer.highwater(tp)
                    if tp not in done and high is not None and await consumer.position(tp) >= high:
                        done.add(tp)
    finally:
        await consumer.stop()
    found.sort(key=lambda pair: (pair[0].dlq_topic, pair[0].partition, pair[0].offset))
    return found


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    known = consumer.partitions_for_topic(topic)
    if known is None:
        await consumer._client.force_metadata_update()
        known = consumer.partitions_for_topic(topic)
    return set(known or ())


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    event_id = None
    try:
        body = json.loads(record.value or b"")
        if isinstance(body, dict) and isinstance(body.get("event_id"), str):
            event_id = body["event_id"]
    except ValueError:
        pass  # a malformed body is a common reason to be here
    return DeadLetter(
        dlq_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key.decode(errors="replace") if record.key else None,
        source_topic=headers.get("dlq_source_topic") or record.topic.removesuffix(DLQ_SUFFIX),
        reason=headers.get("dlq_reason", "unknown"),
        detail=headers.get("dlq_detail", ""),
        service=headers.get("dlq_service", ""),
        request_id=headers.get("request_id"),
        event_id=event_id,
    )


async def _mark_replayed(
    conn: psycopg.AsyncConnection[Any], letters: Sequence[DeadLetter]
) -> list[DeadLetter]:
    if not letters:
        return []
    cur = await conn.execute(
        'SELECT dlq_topic, partition, "offset", timestamp_ms FROM ops.dlq_replays'
        " WHERE dlq_topic = ANY(%s)",
        (sorted({d.dlq_topic for d in letters}),),
    )
    done = {tuple(r) for r in await cur.fetchall()}
    return [
        _with(d, replayed=(d.dlq_topic, d.partition, d.offset, d.timestamp_ms) in done)
        for d in letters
    ]


def _with(letter: DeadLetter, **changes: Any) -> DeadLetter:
    return DeadLetter(**{**asdict(letter), **changes})


async def list_dead_letters(kafka: KafkaSettings, database: DatabaseSettings) -> list[DeadLetter]:
    letters = [d for d, _ in await read_dead_letters(kafka)]
    async with await psycopg.AsyncConnection.connect(database.dsn) as conn:
        return await _mark_replayed(conn, letters)


async def replay(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    *,
    refs: Sequence[str] = (),
    reason: str | None = None,
    everything: bool = False,
    again: bool = False,
    actor: str = "",
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Republish the chosen dead letters to their source topics; returns (replayed, skipped).

    Choose by ``refs`` (``topic:partition:offset``), by ``reason``, or ``everything``.
    """
    wanted = set(refs)
    chosen = [
        (d, r)
        for d, r in await read_dead_letters(kafka)
        if everything or d.ref in wanted or (reason is not None and d.reason == reason)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks=kafka.acks,
        enable_idempotence=kafka.enable_idempotence,
        request_timeout_ms=kafka.request_timeout_ms,
    )
    replayed: list[DeadLetter] = []
    skipped: list[DeadLetter] = []
    await producer.start()
    try:
        async with await psycopg.AsyncConnection.connect(database.dsn) as conn:
            for letter, record in chosen:
                async with conn.transaction():
                    cur = await conn.execute(
                        'INSERT INTO ops.dlq_replays (dlq_topic, partition, "offset",'
                        " timestamp_ms, source_topic, event_id, replayed_by)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (
                            letter.dlq_topic,
                            letter.partition,
                            letter.offset,
                            letter.timestamp_ms,
                            letter.source_topic,
                            letter.event_id,
                            actor or os.environ.get("USER", "unknown"),
                        ),
                    )
                    if cur.rowcount == 0 and not again:
                        skipped.append(_with(letter, replayed=True))
                        continue
                    headers = [(k, v) for k, v in record.headers or () if k not in _DLQ_HEADERS]
                    headers.append(("dlq_replayed_from", letter.ref.encode()))
                    # Committed only once the broker has the message (see the module's note).
                    await producer.send_and_wait(
                        letter.source_topic, record.value, key=record.key, headers=headers
                    )
                replayed.append(_with(letter, replayed=True))
    finally:
        await producer.stop()
    return replayed, skipped


# ---------------------------------------------------------------------------------- CLI
app = typer.Typer(
    help="Dead-lettered messages: list them, replay them after a fix (KAFKA_*, DATABASE_*).",
    no_args_is_help=True,
)


@app.callback()
def _main() -> None:
    """Reads KAFKA_* and DATABASE_* settings."""


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Every message on the .dlq topics: where, when, key, reason, and whether replayed."""
    letters = asyncio.run(list_dead_letters(KafkaSettings(), DatabaseSettings()))
    if as_json:
        for d in letters:
            typer.echo(json.dumps({**asdict(d), "ref": d.ref, "at": d.at.isoformat()}))
        return
    if not letters:
        typer.echo("no dead-lettered messages")
        return
    for d in letters:
        mark = "replayed" if d.replayed else "waiting"
        typer.echo(
            f"{d.ref:<32} {d.at.isoformat(timespec='seconds')}  key={d.key}  {mark:<8}"
            f"  {d.service}: {d.reason}  {d.detail[:100]}"
        )
    typer.echo(f"{len(letters)} message(s); replay with: platform-dlq replay --ref <ref>")


@app.command("replay")
def replay_command(
    ref: list[str] = typer.Option(  # noqa: B008
        [], "--ref", help="topic:partition:offset as `list` prints it (repeatable)."
    ),
    reason: str | None = typer.Option(None, help="Every message dead-lettered for this reason."),
    everything: bool = typer.Option(False, "--all", help="Every dead-lettered message."),
    again: bool = typer.Option(False, help="Also those replayed before."),
) -> None:
    """Republish chosen dead letters to their source topic, each once."""
    if not (ref or reason or everything):
        raise typer.BadParameter("choose messages with --ref, --reason or --all")
    replayed, skipped = asyncio.run(
        replay(
            KafkaSettings(),
            DatabaseSettings(),
            refs=ref,
            reason=reason,
            everything=everything,
            again=again,
        )
    )
    for d in replayed:
        typer.echo(f"replayed {d.ref} -> {d.source_topic}")
    for d in skipped:
        typer.echo(f"skipped  {d.ref} (replayed before; --again to repeat)")
    typer.echo(f"{len(replayed)} replayed, {len(skipped)} skipped")


if __name__ == "__main__":
    app()
