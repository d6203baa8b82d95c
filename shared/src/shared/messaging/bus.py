"""Publishing and consuming the saga's events, with the dead-letter route.

``EventBus`` is the only way services touch topics: it adds the platform headers
(``request_id``, ``tenant_id``, ``schema``; ``traceparent`` comes from the telemetry
middleware), keys every message by ``request_id`` so a saga stays on one partition and in
order, and records audit steps.

``subscribe`` wraps a plain ``async def handler(event)`` into a FastStream subscriber that:
- decodes and validates the bytes; a message that can never be handled (malformed JSON,
  unknown ``schema_version``, missing fields, wrong type) goes to ``<topic>.dlq`` with the
  reason in its headers, is audited, its offset is committed, and the consumer moves on;
- retries a failing handler with exponential backoff and jitter; transient infrastructure
  errors are retried without limit (the message is rewound, never skipped), anything else
  is dead-lettered after ``max_attempts`` so one poisonous message cannot stall a partition;
- handles each message (each record of a batch) inside a log scope (:mod:`shared.log_context`)
  with the message's ``request_id`` and ``tenant_id``, and within its span, so every line the
  handler writes names the saga and the trace; one line per handled message says so, which is
  how a saga's ``request_id`` finds it in the log of every service it crossed.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared import log_context
from shared.contracts import (
    EVENT_OF_TOPIC,
    AuditOutcome,
    AuditRecorded,
    DecodeError,
    Event,
    Topic,
    dead_letter_topic,
    decode,
    derive_event_id,
)
from shared.settings import KafkaSettings
from shared.telemetry import current_trace_id

from .broker import consumer_options
from .metrics import ConsumerLag, MessagingMetrics

__all__ = ["NIL_REQUEST_ID", "EventBus", "is_transient"]

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

#: Stands in for the request id of a message too broken to carry one.
NIL_REQUEST_ID = uuid.UUID(int=0)

HEADER_REQUEST_ID = "request_id"
HEADER_TENANT_ID = "tenant_id"
HEADER_SCHEMA = "schema"

#: A decodable record of a batch, its event and the span of its own saga's trace.
_Decoded = tuple[ConsumerRecord[Any, Any], Any, trace.Span]


def is_transient(exc: BaseException) -> bool:
    """Errors of the infrastructure (database, broker, network) rather than of the message.

    Broker errors count when aiokafka marks them retriable (leader moves, a node not ready,
    a request timing out), plus the connection and timeout errors it does not mark so:
    ``NodeNotReadyError`` during an outage once reached callers as HTTP 500.
    """
    import psycopg
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaError,
        KafkaTimeoutError,
        NodeNotReadyError,
        RequestTimedOutError,
    )

    if isinstance(exc, KafkaError) and exc.retriable:
        return True
    return isinstance(
        exc,
        psycopg.OperationalError
        | KafkaConnectionError
        | KafkaTimeoutError
        | NodeNotReadyError
        | RequestTimedOutError
        | TimeoutError
        | ConnectionError,
    )


class EventBus:
    def __init__(
        self,
        broker: KafkaBroker,
        settings: KafkaSettings,
        *,
        service: str,
        max_attempts: int = 4,
        metrics: MessagingMetrics | None = None,
        lag: ConsumerLag | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.service = service
        self.max_attempts = max_attempts
        self.metrics = metrics
        #: Every subscription is tracked, so the service reports the lag of its own groups.
        self.lag = lag

    # ------------------------------------------------------------------ publishing
    async def publish(self, topic: Topic, event: Event) -> None:
        await self.broker.publish(
            event.to_bytes(),
            topic=self.settings.topic(topic),
            key=str(event.request_id).encode(),
            headers=self._headers(event),
        )

    async def audit(
        self,
        *,
        request_id: uuid.UUID,
        tenant_id: str,
        action: str,
        actor: str,
        subject_event_id: uuid.UUID | None = None,
        outcome: AuditOutcome = AuditOutcome.OK,
        details: dict[str, Any] | None = None,
        dedupe_key: str | None = None,
    ) -> AuditRecorded:
        """Record one step. The record's id is derived from what it is about, so handling a
        redelivered message records the same step again with the same id and the auditor
        keeps one row."""
        anchor = dedupe_key or str(subject_event_id or uuid.uuid4())
        record = AuditRecorded(
            event_id=derive_event_id(anchor, f"audit:{self.service}:{action}"),
            request_id=request_id,
            tenant_id=tenant_id,
            service=self.service,
            action=action,
            outcome=outcome,
            actor=actor,
            subject_event_id=subject_event_id,
            trace_id=current_trace_id(),
            details=details or {},
        )
        await self.publish(Topic.AUDIT, record)
        return record

    @staticmethod
    def _headers(event: Event) -> dict[str, str]:
        return {
            HEADER_REQUEST_ID: str(event.request_id),
            HEADER_TENANT_ID: event.tenant_id,
            HEADER_SCHEMA: event.schema_name(),
            "content-type": "application/json",
        }

    # ------------------------------------------------------------------ consuming
    def subscribe(
        self,
        topic: Topic,
        handler: Callable[[Any], Awaitable[None]],
        *,
        group_id: str,
    ) -> None:
        """Consume ``topic`` one message at a time with ``handler(event)``."""
        event_type = EVENT_OF_TOPIC[topic]

        async def on_message(msg: KafkaMessage) -> None:
            record = msg.raw_message
            assert isinstance(record, ConsumerRecord)
            # FastStream's telemetry middleware made the message's span current already.
            with self._log_scope(record):
                event = await self._decode_or_dead_letter(topic, event_type, record, group_id)
                if event is not None:
                    log_context.bind(request_id=event.request_id, tenant_id=event.tenant_id)
                    await self._run(handler, event, topic, record, group_id)

        subscriber = self.broker.subscriber(
            self.settings.topic(topic),
            title=f"{self.service}:{topic}",
            description=f"{self.service} consumes {event_type.schema_name()}",
            **consumer_options(self.settings, group_id=group_id),
        )
        subscriber(on_message)
        if self.lag is not None:
            self.lag.track(
                subscriber, topic=str(topic), kafka_topic=self.settings.topic(topic), group=group_id
            )

    def subscribe_batch(
        self,
        topic: Topic,
        handler: Callable[[Sequence[Any]], Awaitable[None]],
        *,
        group_id: str,
        max_records: int = 500,
    ) -> None:
        """Consume ``topic`` in batches (for write-heavy projections such as the audit log).

        ``handler(events)`` gets every decodable record of one poll; undecodable ones are
        dead-lettered first, as in :meth:`subscribe`. The batch's offsets are committed only
        once every record in it has been handled or dead-lettered, so a failing handler must
        never cost more than the records that cause the failure:

        - a transient failure (``is_transient``) is retried in place, then raised, so the whole
          batch is rewound and redelivered: nothing is skipped;
        - any other failure splits the batch: its records are handled one at a time, each with
          the retry policy of :meth:`subscribe`, and only those that still fail are
          dead-lettered, each with its own reason. One poisonous record costs only itself.

        The handler must be idempotent (it is anyway: delivery is at-least-once): after a
        split, or a rewind in the middle of one, records it already handled come again.
        """
        event_type = EVENT_OF_TOPIC[topic]

        async def on_batch(msg: KafkaMessage) -> None:
            records = msg.raw_message
            batch = tuple(records) if isinstance(records, tuple | list) else (records,)
            decoded: list[_Decoded] = []
            for record in batch:
                with self._log_scope(record):
                    event = await self._decode_or_dead_letter(topic, event_type, record, group_id)
                if event is not None:
                    decoded.append((record, event, self._record_span(topic, record, group_id)))
            try:
                if decoded:
                    await self._run_batch(handler, decoded, topic, group_id)
            finally:
                for _, _, span in decoded:
                    span.end()

        options = consumer_options(self.settings, group_id=group_id)
        options["max_poll_records"] = max_records
        subscriber = self.broker.subscriber(
            self.settings.topic(topic),
            batch=True,
            title=f"{self.service}:{topic}:batch",
            description=f"{self.service} consumes {event_type.schema_name()} in batches",
            **options,
        )
        subscriber(on_batch)
        if self.lag is not None:
            self.lag.track(
                subscriber, topic=str(topic), kafka_topic=self.settings.topic(topic), group=group_id
            )

    async def _run_batch(
        self,
        handler: Callable[[Sequence[Any]], Awaitable[None]],
        decoded: Sequence[_Decoded],
        topic: Topic,
        group_id: str,
    ) -> None:
        """Handle a batch whole; on a non-transient failure, record by record."""
        # Only transient failures are worth repeating for the whole batch: anything else is
        # most likely one bad record, and the per-record pass below retries each record anyway.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        first = decoded[0][0]
        started = time.perf_counter()
        try:
            async for attempt in retrying:
                with attempt:
                    await handler([event for _, event, _ in decoded])
        except Exception as exc:
            if is_transient(exc):
                # Infrastructure is down: rewind the whole batch and try again later.
                log.warning(
                    "transient failure on a batch of %d from %s offset %s: %r",
                    len(decoded),
                    topic,
                    first.offset,
                    exc,
                )
                raise
            log.warning(
                "batch of %d from %s offset %s failed (%r); handling its records one at a time",
                len(decoded),
                topic,
                first.offset,
                exc,
            )
        else:
            elapsed_ms = 1000 * (time.perf_counter() - started)
            for record, event, span in decoded:
                with self._record_scope(record, event, span):
                    log.info(
                        "handled %s from %s in a batch of %d in %.1f ms",
                        event.schema_name(),
                        topic,
                        len(decoded),
                        elapsed_ms,
                    )
            return

        async def one(event: Any) -> None:
            await handler((event,))

        for record, event, span in decoded:
            # Retries this record, dead-letters it if it still fails for a non-transient
            # reason, and raises (rewinding the whole batch) if the failure is transient.
            with self._record_scope(record, event, span):
                await self._run(one, event, topic, record, group_id)

    @contextlib.contextmanager
    def _log_scope(self, record: ConsumerRecord[Any, Any]) -> Iterator[log_context.LogContext]:
        """A log scope with the ids the headers claim (until the decoded event says)."""
        headers = _headers_of(record)
        with log_context.scope(
            service=self.service,
            request_id=headers.get(HEADER_REQUEST_ID),
            tenant_id=headers.get(HEADER_TENANT_ID),
        ) as scope:
            yield scope

    @contextlib.contextmanager
    def _record_scope(
        self, record: ConsumerRecord[Any, Any], event: Event, span: trace.Span
    ) -> Iterator[None]:
        """Inside one record of a batch: its log scope and its span."""
        with self._log_scope(record), trace.use_span(span, end_on_exit=False):
            log_context.bind(request_id=event.request_id, tenant_id=event.tenant_id)
            yield

    def _record_span(
        self, topic: Topic, record: ConsumerRecord[Any, Any], group_id: str
    ) -> trace.Span:
        """A span per record of a batch, child of that record's ``traceparent``.

        FastStream gives a batch one span, which can belong to one trace only; these keep
        every saga's trace complete when a batch mixes messages of many sagas.
        """
        parent = propagate.extract(record.headers or (), getter=_HEADER_GETTER)
        return _tracer.start_span(
            f"{self.settings.topic(topic)} process record",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": self.settings.topic(topic),
                "messaging.consumer.group.name": group_id,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                "service": self.service,
            },
        )

    async def _decode_or_dead_letter(
        self, topic: Topic, event_type: type[E], record: ConsumerRecord[Any, Any], group_id: str
    ) -> E | None:
        headers = _headers_of(record)
        try:
            return decode(event_type, record.value or b"", headers.get(HEADER_SCHEMA))
        except DecodeError as err:
            await self.dead_letter(topic, record, group_id, reason=err.reason, detail=err.detail)
            return None

    async def _run(
        self,
        handler: Callable[[Any], Awaitable[None]],
        payload: Any,
        topic: Topic,
        record: ConsumerRecord[Any, Any],
        group_id: str,
    ) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            reraise=True,
        )
        started = time.perf_counter()
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await handler(payload)
        except Exception as exc:
            if is_transient(exc):
                # Infrastructure is down: rewind and try again later, never skip.
                log.warning("transient failure on %s offset %s: %r", topic, record.offset, exc)
                raise
            log.exception("handler failed on %s offset %s; dead-lettering", topic, record.offset)
            await self.dead_letter(
                topic, record, group_id, reason="handler_failed", detail=repr(exc)[:500]
            )
        else:
            log.info(
                "handled %s from %s in %.1f ms (attempt %d)",
                payload.schema_name() if isinstance(payload, Event) else type(payload).__name__,
                topic,
                1000 * (time.perf_counter() - started),
                attempts,
            )

    async def dead_letter(
        self,
        topic: Topic,
        record: ConsumerRecord[Any, Any],
        group_id: str,
        *,
        reason: str,
        detail: str,
    ) -> None:
        headers = _headers_of(record)
        dlq_headers = {
            **headers,
            "dlq_reason": reason,
            "dlq_detail": detail[:1000],
            "dlq_source_topic": record.topic,
            "dlq_partition": str(record.partition),
            "dlq_offset": str(record.offset),
            "dlq_consumer_group": group_id,
            "dlq_service": self.service,
        }
        await self.broker.publish(
            record.value or b"",
            topic=dead_letter_topic(self.settings.topic(topic)),
            key=record.key,
            headers=dlq_headers,
        )
        if self.metrics is not None:
            self.metrics.dead_lettered(str(topic), reason)
        request_id = _uuid_or_nil(headers.get(HEADER_REQUEST_ID))
        await self.audit(
            request_id=request_id,
            tenant_id=headers.get(HEADER_TENANT_ID) or "unknown",
            action="dlq.routed",
            actor=self.service,
            outcome=AuditOutcome.ERROR,
            details={
                "topic": str(topic),
                "reason": reason,
                "detail": detail[:300],
                "partition": record.partition,
                "offset": record.offset,
                "group": group_id,
            },
            dedupe_key=f"{record.topic}:{record.partition}:{record.offset}:{group_id}",
        )
        log.warning(
            "dead-lettered %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason
        )


class _KafkaHeaderGetter(Getter[Iterable[tuple[str, bytes]]]):
    def get(self, carrier: Iterable[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode(errors="replace") for k, v in carrier if k.lower() == key.lower()]
        return values or None

    def keys(self, carrier: Iterable[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


_HEADER_GETTER = _KafkaHeaderGetter()
_tracer = trace.get_tracer("shared.messaging")


def _headers_of(record: ConsumerRecord[Any, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in _iter_headers(record.headers):
        try:
            out[key] = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError:
            continue
    return out


def _iter_headers(headers: Iterable[tuple[str, bytes]] | None) -> Iterable[tuple[str, bytes]]:
    return headers or ()


def _uuid_or_nil(value: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(value) if value else NIL_REQUEST_ID
    except ValueError:
        return NIL_REQUEST_ID
