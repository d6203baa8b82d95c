"""The real local stack under supervisord: a crash is survived, and ``up`` recovers a stack.

One ephemeral stack (random ports, its own state folder and supervisord) with two gateway
replicas for the module: starting it takes about half a minute, mostly the services joining
their consumer groups.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from devstack.cli import status_report
from devstack.stack import LocalStack, StackConfig

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[LocalStack]:
    from psycopg import conninfo

    config = StackConfig.ephemeral(tmp_path_factory.mktemp("stack"), gateways=2)
    config.database_url = conninfo.make_conninfo(
        postgres_server, dbname=f"support_stack_{uuid.uuid4().hex[:8]}"
    )
    local = LocalStack(config)
    local.up(timeout=240)
    try:
        yield local
    finally:
        local.down()
        assert local.supervisor.pid() is None
        assert local.supervisor.orphans() == [], "down leaves nothing running"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_every_program_runs_and_status_says_so(stack: LocalStack) -> None:
    programs = stack.programs()
    assert set(programs) == set(stack.program_names())
    assert {info.state for info in programs.values()} == {"RUNNING"}
    assert all(stack.rss_bytes(name) > 10 * 1024 * 1024 for name in programs)
    for url in stack.gateway_urls():
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    lines, ok = status_report(stack)
    assert ok, lines
    assert any(line.startswith("gateway-2 ") and "RUNNING" in line for line in lines)


def test_every_service_and_the_executor_serve_their_metrics(stack: LocalStack) -> None:
    """Each consuming service reports the lag of its own groups on its /metrics (the figures
    refresh every 5 s), the executor worker answers /healthz and /metrics on its own port."""
    assert httpx.get(f"{stack.url('executor')}/healthz", timeout=5).status_code == 200
    metrics = httpx.get(f"{stack.url('executor')}/metrics", timeout=5)
    assert metrics.status_code == 200 and "process_resident_memory_bytes" in metrics.text
    consumers = {"gateway", "retriever", "agent", "approver", "auditor"}
    deadline = time.monotonic() + 30
    missing = set(consumers)
    while missing and time.monotonic() < deadline:
        for name in sorted(missing):
            text = httpx.get(f"{stack.url(name)}/metrics", timeout=5).text
            if "platform_kafka_consumer_lag{" in text:
                missing.discard(name)
        time.sleep(0.5)
    assert not missing, f"no consumer lag on the /metrics of {sorted(missing)}"


def test_a_killed_service_comes_back_by_itself_and_the_others_keep_running(
    stack: LocalStack,
) -> None:
    before = {name: stack.pid(name) for name in stack.program_names()}
    restarts = stack.restarts("gateway-2")

    assert stack.kill("gateway-2") == before["gateway-2"]
    new_pid = stack.wait_running("gateway-2", new_pid_than=before["gateway-2"], timeout=60)
    stack.wait_healthy(["gateway-2"], timeout=90)

    assert _gone(before["gateway-2"])
    assert new_pid != before["gateway-2"]
    assert stack.restarts("gateway-2") == restarts + 1
    after = {name: stack.pid(name) for name in stack.program_names()}
    assert {n: p for n, p in after.items() if n != "gateway-2"} == {
        n: p for n, p in before.items() if n != "gateway-2"
    }, "no other program was restarted"
    lines, ok = status_report(stack)
    assert ok, lines
    [row] = [line for line in lines if line.startswith("gateway-2 ")]
    assert row.split()[4] == str(restarts + 1), row


def test_a_crashed_broker_comes_back_with_its_topics(stack: LocalStack) -> None:
    old = stack.pid("broker")
    tansu = [p.pid for p in psutil.Process(old).children()]
    assert tansu, "Tansu runs under the broker runner"
    stack.kill("broker")
    stack.wait_running("broker", new_pid_than=old, timeout=60)
    stack.wait_healthy(["broker"], timeout=60)
    assert all(_gone(pid) for pid in [old, *tansu]), "the whole process group died"
    assert stack.restarts("broker") >= 1


def test_up_recovers_a_stack_whose_supervisord_died_with_a_program_down(
    stack: LocalStack,
) -> None:
    stack.stop("auditor")  # down, and supervisord will not restart it: only `up` will
    assert stack.programs()["auditor"].state == "STOPPED"
    restarts = stack.programs()
    daemon = stack.supervisor.pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stack.supervisor.pid() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphans = [p.pid for p in stack.supervisor.orphans()]
    assert orphans, "its programs outlived it"

    again = LocalStack(StackConfig.ephemeral(stack.config.state_dir))  # as `make up` would
    actions = again.up(timeout=240)

    assert "started supervisord again" in actions
    assert "started auditor" in actions
    assert all(_gone(pid) for pid in orphans), "the orphans were replaced, not duplicated"
    programs = again.programs()
    assert {info.state for info in programs.values()} == {"RUNNING"}
    assert {n: i.restarts for n, i in programs.items()} == {
        n: i.restarts for n, i in restarts.items()
    }, "restarts are counted across a supervisord restart; killed orphans are not restarts"
    assert again.gateway_urls() == stack.gateway_urls()
    assert again.up(timeout=60) == [], "an intact stack is left as it is"
