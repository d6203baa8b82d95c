"""The environment the local stack gives its services."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.stack import SERVICES, LocalStack, StackConfig, procfile

pytestmark = pytest.mark.unit


def test_procfile_runs_every_service_as_a_module() -> None:
    entries = procfile()
    for service in SERVICES:
        assert entries[service] == f"python -m {service}"
    assert "otlp-sink" in entries


def test_environment_carries_ports_broker_tunings_and_telemetry(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig.ephemeral(tmp_path))
    env = stack.env()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{stack.config.kafka_port}"
    assert env["KAFKA_ENABLE_IDEMPOTENCE"] == "false", "Tansu's idempotent producer fails"
    assert int(env["KAFKA_FETCH_MAX_WAIT_MS"]) <= 50, (
        "Tansu answers a waiting fetch only when the wait is over: the Kafka default of 500 ms"
        " costs ~250 ms per hop"
    )
    assert env["TELEMETRY_EXPORTER"] == "otlp"
    assert env["TELEMETRY_OTLP_ENDPOINT"].endswith(str(stack.config.otlp_port))
    ports = {int(env[f"{s.upper()}_HTTP__PORT"]) for s in SERVICES}
    assert len(ports) == len(SERVICES)
    assert env["RETRIEVER_INDEX__PATH"].startswith(str(tmp_path))


def test_down_without_up_is_harmless(tmp_path: Path) -> None:
    LocalStack(StackConfig.ephemeral(tmp_path)).down()
