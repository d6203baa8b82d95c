"""supervisord as the local stack's process manager: configuration, restarts, recovery.

The daemon tests run a real supervisord with two trivial programs through the same
configuration generator the stack uses, so each takes a few seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from devstack.ports import free_port
from devstack.stack import LocalStack, StackConfig
from devstack.supervision import (
    MARKER_ENV,
    Program,
    Supervisor,
    SupervisorError,
    log_timestamp,
    quote_command,
)

SLEEPER = quote_command([sys.executable, "-c", "import time; time.sleep(3600)"])


def _parse(conf: Path) -> ServerOptions:
    """Read a configuration exactly as supervisord does at start-up."""
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return options


def _processes(options: ServerOptions) -> dict[str, Any]:
    return {
        process.name: process
        for group in options.process_group_configs
        for process in group.process_configs
    }


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s: {predicate}"
        time.sleep(0.05)


@pytest.mark.unit
def test_the_stack_configuration_is_what_supervisord_reads(tmp_path: Path) -> None:
    stack = LocalStack(
        StackConfig.ephemeral(tmp_path, gateways=2, extra_env={"ODD": "50% 'off',#1"})
    )
    supervisor = stack.supervisor
    options = _parse(supervisor.write_conf())

    processes = _processes(options)
    assert set(processes) == set(stack.program_names())
    assert set(processes) == {
        "broker",
        "otlp-sink",
        "gateway-1",
        "gateway-2",
        "retriever",
        "agent",
        "approver",
        "auditor",
        "executor",
    }
    env = stack.env()
    for name, process in processes.items():
        assert process.autorestart is RestartUnconditionally, name
        assert process.stopasgroup and process.killasgroup, name
        assert process.redirect_stderr, name
        assert process.stdout_logfile == str(supervisor.program_log(name))
        assert process.stdout_logfile_maxbytes == 10 * 1024 * 1024
        assert process.stdout_logfile_backups == 3
        expected = {**env, MARKER_ENV: str(supervisor.conf_path)}
        if name.startswith("gateway-"):
            expected["GATEWAY_HTTP__PORT"] = stack.url(name).rsplit(":", 1)[1]
        if name == "approver":  # the executor program runs execution, relay and sweeps
            expected["APPROVER_BACKGROUND"] = "false"
        if name == "executor":  # its /metrics and /healthz, on a port of its own
            expected["APPROVER_EXECUTOR__METRICS_PORT"] = str(stack.config.executor_metrics_port)
        assert process.environment == expected, name
    assert processes["gateway-1"].command.endswith(" -m gateway")
    assert processes["broker"].command.endswith(" -m devstack.broker_runner")
    assert processes["broker"].priority < processes["retriever"].priority, "broker starts first"
    assert options.logfile == str(supervisor.logfile)
    assert options.logfile_maxbytes == 10 * 1024 * 1024
    assert options.logfile_backups == 3
    assert options.pidfile == str(supervisor.pidfile)
    [server] = options.server_configs
    assert server["family"] == socket.AF_INET
    assert server["port"] == stack.config.control_port
    assert server["password"], "XML-RPC on loopback needs a password"
    assert oct(supervisor.conf_path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.unit
def test_the_default_stack_is_controlled_through_a_unix_socket(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(state_dir=tmp_path, gateways=3))
    options = _parse(stack.supervisor.write_conf())
    [server] = options.server_configs
    assert server["family"] == socket.AF_UNIX
    assert server["file"] == str(tmp_path / "supervisord.sock")
    assert server["chmod"] == 0o700
    assert stack.gateway_urls() == [
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8012",
        "http://127.0.0.1:8013",
    ]


@pytest.mark.unit
@pytest.mark.parametrize("value", ["two\nlines", "both ' and \"", '"quoted"', "x ;comment"])
def test_a_value_supervisord_would_misread_is_refused(tmp_path: Path, value: str) -> None:
    supervisor = Supervisor(tmp_path, [Program("p", SLEEPER)], environment={"X": value})
    with pytest.raises(ValueError, match=r"supervisord\.conf"):
        supervisor.render()


@pytest.mark.unit
def test_restarts_are_counted_from_current_and_rotated_logs_since_the_start(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(tmp_path, [], since="2026-01-02 10:00:00,000")
    supervisor.logs_dir.mkdir()
    before = "2026-01-02 09:59:59,999"
    after = "2026-01-02 10:00:01,000"
    supervisor.logfile.with_name("supervisord.log.1").write_text(
        f"{before} WARN exited: a (terminated by SIGKILL; not expected)\n"
        f"{after} WARN exited: a (terminated by SIGKILL; not expected)\n"
        f"{after} INFO exited: b (exit status 0; expected)\n"
    )
    supervisor.logfile.write_text(
        f"{after} WARN exited: a (exit status 1; not expected)\n"
        f"{after} WARN exited: b (terminated by SIGSEGV (core dumped); not expected)\n"
        f"{after} WARN stopped: a (terminated by SIGTERM)\n"
        f"{after} INFO gave up: a entered FATAL state, too many start retries too quickly\n"
    )
    assert supervisor.restarts() == {"a": 2, "b": 1}


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervisor]:
    supervisor = Supervisor(
        tmp_path / "state",
        [Program("a", SLEEPER, startsecs=1), Program("b", SLEEPER, startsecs=1)],
        control_port=free_port(),
        since=log_timestamp(),
    )
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.shutdown(timeout=20)
        assert supervisor.pid() is None
        assert supervisor.orphans() == []


@pytest.mark.integration
def test_a_killed_program_comes_back_alone_and_its_restart_is_counted(
    supervised: Supervisor,
) -> None:
    assert supervised.start_programs(["a", "b"]) == ["a", "b"]
    a = supervised.wait_running("a", timeout=10)
    b = supervised.wait_running("b", timeout=10)

    assert supervised.kill("a") == a
    new_a = supervised.wait_running("a", new_pid_than=a, timeout=10)

    assert new_a != a
    assert not psutil.pid_exists(a) or psutil.Process(a).status() == psutil.STATUS_ZOMBIE
    infos = supervised.programs_info()
    assert infos["b"].pid == b, "the other program was left alone"
    assert (infos["a"].restarts, infos["b"].restarts) == (1, 0)
    assert infos["a"].state == "RUNNING" and infos["a"].uptime_s is not None
    assert supervised.rss_bytes("a") > 1024 * 1024
    assert supervised.start_programs(["a", "b"]) == [], "running programs are left as they are"


@pytest.mark.integration
def test_a_killed_supervisord_is_started_again_without_its_orphans(
    supervised: Supervisor,
) -> None:
    supervised.start_programs(["a", "b"])
    old = {name: supervised.wait_running(name, timeout=10) for name in ("a", "b")}
    daemon = supervised.pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    _wait(lambda: supervised.pid() is None)
    assert {p.pid for p in supervised.orphans()} == set(old.values()), "programs outlive it"
    with pytest.raises(SupervisorError):
        supervised.programs_info()

    actions = supervised.ensure()

    assert "killed 2 orphaned process(es) of a dead supervisord" in actions
    assert supervised.pid() not in (None, daemon)
    for pid in old.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert supervised.start_programs(["a", "b"]) == ["a", "b"]
    for name, pid in old.items():
        assert supervised.wait_running(name, new_pid_than=pid, timeout=10) != pid
    assert supervised.ensure() == [], "a live supervisord is kept"


@pytest.mark.integration
def test_a_fatal_program_is_started_again(tmp_path: Path) -> None:
    flag = tmp_path / "may-run"
    flaky = quote_command(
        [
            sys.executable,
            "-c",
            f"import pathlib, sys, time; pathlib.Path({str(flag)!r}).exists() or sys.exit(3);"
            " time.sleep(3600)",
        ]
    )
    supervisor = Supervisor(
        tmp_path / "state",
        [Program("flaky", flaky, startsecs=1, startretries=0)],
        control_port=free_port(),
    )
    supervisor.start()
    try:
        supervisor.start_programs(["flaky"])
        _wait(lambda: supervisor.states()["flaky"] == "FATAL")
        with pytest.raises(SupervisorError, match="FATAL"):
            supervisor.wait_running("flaky", timeout=5)
        flag.touch()  # the cause is fixed: `up` starts what is not running
        assert supervisor.start_programs(["flaky"]) == ["flaky"]
        supervisor.wait_running("flaky", timeout=10)
        assert supervisor.restarts() == {"flaky": 1}
    finally:
        supervisor.shutdown(timeout=20)
