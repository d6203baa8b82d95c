"""Kafka metrics of a service: consumer lag of its own groups, and its dead letters.

``platform.kafka.consumer.lag`` (``platform_kafka_consumer_lag{topic, group}``): for every
partition this process consumes, the high-water mark minus the group's committed offset,
summed per topic and group. Each replica reports the partitions assigned to it, so
``sum by (topic, group)`` over replicas is the group's lag.

The high-water mark is the one the consumer's own fetch responses carry (aiokafka keeps it per
assigned partition, no request needed); ``end_offsets()`` is avoided on purpose, the local
broker answers it wrongly when a batch holds several records. The committed offset costs one
request to the group coordinator per partition, so a background task refreshes the figures
every ``refresh_s`` seconds and the gauge's callback, which runs inside a scrape, only reads
them: a scrape never waits on the broker, and a slow broker only makes the figures older.

``platform.dead_letters`` (``platform_dead_letters_total{topic, reason}``): messages this
service sent to ``<topic>.dlq``. ``reason`` is one of :data:`DEAD_LETTER_REASONS` (anything
else counts as ``other``), never the error text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from shared.refresher import Refresher

__all__ = ["DEAD_LETTER_REASONS", "ConsumerLag", "MessagingMetrics"]


#: The reasons a message is dead-lettered: the decode errors of ``shared.contracts.codec`` and
#: a handler that kept failing for a reason no retry fixes.
DEAD_LETTER_REASONS = frozenset(
    {
        "malformed_json",
        "missing_schema_version",
        "unknown_schema_version",
        "unknown_message_type",
        "too_large",
        "invalid_fields",
        "handler_failed",
    }
)


class MessagingMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self._dead_letters = meter.create_counter(
            "platform.dead_letters",
            unit="{message}",
            description="Messages sent to the dead-letter topic, by source topic and reason.",
        )

    def dead_lettered(self, topic: str, reason: str) -> None:
        label = reason if reason in DEAD_LETTER_REASONS else "other"
        self._dead_letters.add(1, {"topic": topic, "reason": label})


@dataclass(frozen=True)
class _Tracked:
    subscriber: Any  # a FastStream Kafka subscriber; its ``consumer`` exists while it runs
    topic: str  # the label: the saga's topic name, without the deployment's prefix
    kafka_topic: str
    group: str


class ConsumerLag:
    """Lag of the consumer groups a service subscribed with, per topic and group."""

    def __init__(
        self, meter: metrics.Meter, *, refresh_s: float = 5.0, timeout_s: float = 2.0
    ) -> None:
        self._tracked: list[_Tracked] = []
        self._latest: dict[tuple[str, str], int] = {}
        self._refresher = Refresher(
            self.refresh, name="consumer lag", refresh_s=refresh_s, timeout_s=timeout_s
        )
        meter.create_observable_gauge(
            "platform.kafka.consumer.lag",
            callbacks=[self._observe],
            unit="{message}",
            description="High-water mark minus committed offset, summed over the partitions"
            " this process consumes, per topic and consumer group.",
        )

    def track(self, subscriber: Any, *, topic: str, kafka_topic: str, group: str) -> None:
        self._tracked.append(_Tracked(subscriber, topic, kafka_topic, group))

    @property
    def latest(self) -> dict[tuple[str, str], int]:
        """The last figures, ``(topic, group) -> lag`` (what the next scrape reports)."""
        return dict(self._latest)

    def _observe(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(lag, {"topic": topic, "group": group})
            for (topic, group), lag in self._latest.items()
        ]

    async def refresh(self) -> dict[tuple[str, str], int]:
        """Measure now: every assigned partition whose high-water mark is known."""
        figures: dict[tuple[str, str], int] = {}
        for tracked in self._tracked:
            consumer = getattr(tracked.subscriber, "consumer", None)
            if consumer is None or not hasattr(consumer, "highwater"):
                continue  # not running (or a test broker's stand-in): nothing to report
            partitions = [tp for tp in consumer.assignment() if tp.topic == tracked.kafka_topic]
            known = [(tp, consumer.highwater(tp)) for tp in partitions]
            known = [(tp, hw) for tp, hw in known if hw is not None]
            if not known:
                continue
            committed = await asyncio.gather(
                *(consumer.committed(tp) for tp, _ in known), return_exceptions=True
            )
            total = 0
            for (_, highwater), offset in zip(known, committed, strict=True):
                if isinstance(offset, BaseException):
                    raise offset
                # Nothing committed yet: the whole partition is behind.
                total += max(0, highwater - (offset or 0))
            key = (tracked.topic, tracked.group)
            figures[key] = figures.get(key, 0) + total
        self._latest = figures
        return figures

    async def start(self) -> None:
        if self._tracked:  # nothing subscribed, nothing to measure
            await self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()
