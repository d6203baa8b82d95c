"""The environment the local stack gives its services."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.stack import SERVICES, LocalStack, StackConfig, procfile

pytestmark = pytest.mark.unit


def test_procfile_runs_every_service_as_a_module() -> None:
    entries = procfile()
    for service in SERVICES:
        assert entries[service] == f"python -m {service}"
    assert entries["otlp-sink"] == "python -m devstack.otlp_sink"
    assert entries["broker"] == "python -m devstack.broker_runner"
    assert entries["executor"] == "python -m approver.worker"


def test_gateway_replicas_are_programs_of_their_own_on_their_own_ports(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(state_dir=tmp_path, gateways=3))
    assert stack.program_names() == [
        "broker",
        "otlp-sink",
        "gateway-1",
        "gateway-2",
        "gateway-3",
        "retriever",
        "agent",
        "approver",
        "auditor",
        "nginx",
        "executor",
        "prometheus",
    ]
    assert stack.service_programs()[-1] == "nginx" and stack.worker_programs() == ["executor"]
    assert stack.prometheus_url == "http://127.0.0.1:9090"
    assert stack.health_url("prometheus") == "http://127.0.0.1:9090/-/ready"
    assert stack.edge_url == "http://127.0.0.1:8080"
    assert stack.url("gateway") == stack.url("gateway-1") == "http://127.0.0.1:8001"
    assert stack.gateway_urls()[1:] == ["http://127.0.0.1:8012", "http://127.0.0.1:8013"]

    test_stack = LocalStack(StackConfig.ephemeral(tmp_path / "e", gateways=2))
    ports = [int(url.rsplit(":", 1)[1]) for url in test_stack.gateway_urls()]
    assert len(set(ports)) == 2 and not {8001, 8012} & set(ports)
    assert LocalStack(StackConfig.ephemeral(tmp_path / "f")).gateway_urls()[0] != stack.url(
        "gateway"
    )


def test_a_recorded_stack_keeps_its_layout(tmp_path: Path) -> None:
    """A second ``LocalStack`` on the same folder (``make status``, ``up`` after a crash, a
    test's helper) sees the ports and replicas the running stack was started with."""
    first = LocalStack(StackConfig.ephemeral(tmp_path, gateways=2))
    first._start_fresh()
    again = LocalStack(StackConfig.ephemeral(tmp_path))
    assert again.recorded_layout is not None
    assert again.gateway_urls() == first.gateway_urls()
    assert again.bootstrap == first.bootstrap
    assert again.sink_url == first.sink_url
    assert again.supervisor.server_url == first.supervisor.server_url
    assert again.supervisor.password == first.supervisor.password
    again.down()
    assert LocalStack(StackConfig.ephemeral(tmp_path)).recorded_layout is None


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


def test_throw_away_stacks_keep_their_caches_apart(tmp_path: Path) -> None:
    # Two eval or test stacks on one Redis must not serve each other's cached answers.
    one = LocalStack(StackConfig.ephemeral(tmp_path / "one"))
    two = LocalStack(StackConfig.ephemeral(tmp_path / "two"))
    assert one.env()["CACHE_NAMESPACE"] != two.env()["CACHE_NAMESPACE"]
    assert LocalStack(StackConfig(state_dir=tmp_path / "dev")).env()["CACHE_NAMESPACE"] == (
        "platform"
    )


@pytest.mark.integration
def test_purge_deletes_only_the_namespace_keys(redis_url: str) -> None:
    import redis as redis_py

    from devstack import redis as stack_redis

    client = redis_py.Redis.from_url(redis_url)
    ns = f"purge-test-{os.getpid()}"
    keep = f"{ns}-other:key"
    client.set(keep, b"1", ex=60)
    for n in range(1203):  # more than one SCAN / UNLINK batch
        client.set(f"{ns}:k{n}", b"1", ex=60)
    try:
        assert stack_redis.purge_namespace(redis_url, ns) == 1203
        assert client.exists(f"{ns}:k0") == 0 and client.exists(keep) == 1
    finally:
        client.delete(keep)
        client.close()
