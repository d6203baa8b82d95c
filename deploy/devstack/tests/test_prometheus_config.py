"""The Prometheus configuration a local stack generates from its ports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from devstack import prometheus
from devstack.stack import LocalStack, StackConfig

pytestmark = pytest.mark.unit


def test_make_up_scrapes_every_program_on_its_fixed_port(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(state_dir=tmp_path, gateways=2))
    config = yaml.safe_load(prometheus.render(stack.prometheus_config()))
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets == {
        "gateway": ["127.0.0.1:8001", "127.0.0.1:8012"],
        "retriever": ["127.0.0.1:8002"],
        "agent": ["127.0.0.1:8003"],
        "approver": ["127.0.0.1:8004"],
        "auditor": ["127.0.0.1:8005"],
        "executor": ["127.0.0.1:8006"],
        "prometheus": ["127.0.0.1:9090"],
    }
    assert config["global"]["scrape_interval"] == "10000ms"
    assert config["rule_files"] == [str(prometheus.RULES / "*.yml")]
    assert stack.env()  # the executor's metrics port is its own program's, not everyone's
    executor = next(p for p in stack._programs() if p.name == "executor")
    assert executor.environment["APPROVER_EXECUTOR__METRICS_PORT"] == "8006"


def test_a_throw_away_stack_runs_prometheus_only_when_asked_on_a_free_port(
    tmp_path: Path,
) -> None:
    assert "prometheus" not in LocalStack(StackConfig.ephemeral(tmp_path / "a")).program_names()
    stack = LocalStack(
        StackConfig.ephemeral(tmp_path / "b", prometheus=True, prometheus_scrape_interval_s=1)
    )
    assert stack.program_names()[-1] == "prometheus"
    assert stack.config.prometheus_port != 9090
    rendered = yaml.safe_load(prometheus.render(stack.prometheus_config()))
    assert rendered["global"]["scrape_interval"] == "1000ms"


def test_promtool_accepts_the_generated_configuration_with_the_rules(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.fail(
            "promtool is not installed: apt-get install prometheus (deploy/apt-packages.txt)"
        )
    stack = LocalStack(StackConfig.ephemeral(tmp_path, prometheus=True))
    conf = tmp_path / "prometheus.yml"
    conf.write_text(prometheus.render(stack.prometheus_config()))
    result = prometheus.check(conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout


def test_compose_and_the_local_stack_scrape_the_same_jobs(tmp_path: Path) -> None:
    """The rules and the dashboard group by job: both configurations must name them alike."""
    compose = yaml.safe_load((prometheus.RULES.parent / "prometheus.yml").read_text())
    local = yaml.safe_load(
        prometheus.render(LocalStack(StackConfig(state_dir=tmp_path)).prometheus_config())
    )
    assert {j["job_name"] for j in compose["scrape_configs"]} == {
        j["job_name"] for j in local["scrape_configs"]
    }


def test_a_stack_recorded_before_prometheus_existed_is_recovered_without_it(
    tmp_path: Path,
) -> None:
    """Its supervisord has no prometheus program: `make up` on it must not ask for one."""
    first = LocalStack(StackConfig.ephemeral(tmp_path, prometheus=True))
    first._start_fresh()
    state = json.loads(first.state_file.read_text())
    del state["layout"]["prometheus"]
    first.state_file.write_text(json.dumps(state))
    again = LocalStack(StackConfig(state_dir=tmp_path))
    assert again.recorded_layout is not None
    assert "prometheus" not in again.program_names()
