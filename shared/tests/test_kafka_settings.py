"""Kafka settings for production: durable writes by settings, consistent or refused."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import ValidationError

from shared.messaging.admin import create_topics
from shared.settings import KafkaSettings


@pytest.mark.unit
def test_defaults_are_the_durable_ones() -> None:
    s = KafkaSettings()
    assert s.enable_idempotence and s.acks == "all"


@pytest.mark.unit
def test_min_insync_replicas_above_the_replication_factor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    assert KafkaSettings().min_insync_replicas == 2
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "4")
    with pytest.raises(ValidationError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        KafkaSettings()


@pytest.mark.unit
def test_an_idempotent_producer_without_acks_all_is_refused_naming_both() -> None:
    with pytest.raises(ValidationError, match="KAFKA_ENABLE_IDEMPOTENCE needs KAFKA_ACKS=all"):
        KafkaSettings(enable_idempotence=True, acks=1)
    assert KafkaSettings(enable_idempotence=False, acks=1).acks == 1


@pytest.mark.integration
async def test_topics_are_created_with_min_insync_replicas(tansu: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    created = await create_topics(
        tansu, prefix=prefix, partitions=2, replication=1, min_insync_replicas=1
    )
    assert f"{prefix}request" in created
    admin = AIOKafkaAdminClient(bootstrap_servers=tansu)
    await admin.start()
    try:
        [described] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, f"{prefix}request")]
        )
        [resource] = described.resources
        entries = {entry[0]: entry[1] for entry in resource[4]}
        assert entries["min.insync.replicas"] == "1"
    finally:
        await admin.close()
