"""Pytest fixtures for integration tests: a real broker, a real PostgreSQL, topic probes.

Loaded for the whole repository with ``-p devstack.pytest_plugin``. One Tansu broker and one
migrated database serve the session; each test gets its own topic prefix, so tests never see
each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from shared.contracts import Topic, dead_letter_topic
from shared.db.migrate import upgrade
from shared.settings import DatabaseSettings, KafkaSettings

from . import postgres
from .broker import create_topics, start_tansu
from .ports import free_port
from .stack import DEPLOY, _read_env_file

__all__ = ["TopicProbe"]

LOCAL_ENV = _read_env_file(DEPLOY / "local.env")


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh in-memory Kafka-protocol broker for the test session."""
    port = free_port()
    process = start_tansu(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: DATABASE_URL's, or a throw-away cluster when none answers."""
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    handle = postgres.ensure_server(url, tmp_path_factory.mktemp("pg"), free_port())
    try:
        yield handle.url
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A migrated database of its own for this test session, dropped afterwards."""
    from psycopg import conninfo

    name = f"support_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = conninfo.make_conninfo(postgres_server, dbname=name)
    postgres.create_database(url)
    upgrade(url)
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture
def database_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(database_url), pool_max_size=4)


@pytest.fixture
async def kafka_settings(tansu: str) -> KafkaSettings:
    """Settings for the session broker with a topic prefix of this test's own."""
    settings = KafkaSettings(
        bootstrap_servers=tansu,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        enable_idempotence=False,
        fetch_max_wait_ms=int(LOCAL_ENV.get("KAFKA_FETCH_MAX_WAIT_MS", "10")),
        session_timeout_ms=int(LOCAL_ENV.get("KAFKA_SESSION_TIMEOUT_MS", "6000")),
        heartbeat_interval_ms=int(LOCAL_ENV.get("KAFKA_HEARTBEAT_INTERVAL_MS", "1000")),
        partitions=2,
    )
    await create_topics(tansu, prefix=settings.topic_prefix, partitions=settings.partitions)
    return settings


class TopicProbe:
    """Reads everything on some topics from the beginning, for assertions."""

    def __init__(self, settings: KafkaSettings, topics: Sequence[str]) -> None:
        self._settings = settings
        self._topics = [settings.topic(t) for t in topics]
        self.messages: list[dict[str, Any]] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await self._consumer.start()
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            known = self._consumer.partitions_for_topic(topic)
            ids = known or await _partitions(self._consumer, topic)
            partitions.extend(TopicPartition(topic, p) for p in ids)
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
            try:
                body = json.loads(record.value) if record.value else None
            except ValueError:
                body = None
            self.messages.append(
                {
                    "topic": record.topic,
                    "key": record.key,
                    "headers": headers,
                    "body": body,
                    "raw": record.value,
                }
            )

    def on(self, topic: str) -> list[dict[str, Any]]:
        name = self._settings.topic(topic)
        return [m for m in self.messages if m["topic"] == name]

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [m for m in self.messages if predicate(m)]
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                seen = sorted({m["topic"] for m in self.messages})
                raise AssertionError(f"no matching message within {timeout}s (topics seen: {seen})")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._consumer is not None:
            await self._consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or {0}


@pytest.fixture
async def probe(kafka_settings: KafkaSettings) -> AsyncIterator[TopicProbe]:
    """Everything published on the five topics and their dead-letter topics in this test."""
    names = [t.value for t in Topic] + [dead_letter_topic(t.value) for t in Topic]
    probe = TopicProbe(kafka_settings, names)
    await probe.start()
    try:
        yield probe
    finally:
        await probe.stop()
