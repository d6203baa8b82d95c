"""The alert rules and the dashboard's queries, checked by promtool (Debian's ``prometheus``).

``promtool test rules`` runs the unit tests in platform-alerts.test.yml: each alert fires on
its failure, with its rendered annotations, and stays silent on a near miss. The tests here
also make sure every alert has such a test, that the tests would catch a rule that lost its
threshold or its traffic guard, and that every dashboard query is valid PromQL.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.prometheus import alert_names, dashboard_queries

pytestmark = pytest.mark.unit

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "rules"
ALERTS = RULES / "platform-alerts.yml"
UNIT_TESTS = HERE / "platform-alerts.test.yml"
DASHBOARDS = HERE.parents[1] / "grafana" / "dashboards"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: apt-get install prometheus (deploy/apt-packages.txt)"
        )
    return subprocess.run(
        [found, *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_accepts_every_rule_file() -> None:
    files = sorted(RULES.glob("*.yml"))
    assert ALERTS in files
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_passes_its_unit_tests() -> None:
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alert_names(RULES) == firing


@pytest.mark.parametrize(
    ("alert", "original", "broken"),
    [
        # The threshold moved: the test that sees 10% of sagas fail must now fail.
        ("SagaErrorRateHigh", ") > 0.05", ") > 0.5"),
        # The traffic guard dropped: one failure out of three at night would page.
        ("SagaErrorRateHigh", "and sum(increase(platform_saga_requests_total[5m])) >= 20", ""),
        # Executed sagas (hours of human wait) counted as slow sagas.
        ("SagaLatencyP99High", '{outcome=~"answered|refused|pending_approval"}', ""),
        # The first dead letter of its kind (counter born at 1) would go unnoticed.
        ("DeadLettersRouted", "> 0\n          or\n", "> 0\n          and\n"),
        # The floor lowered: 80% of citations supported would pass.
        ("CitationAccuracyDropped", "< 0.9\n", "< 0.5\n"),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(
    tmp_path: Path, alert: str, original: str, broken: str
) -> None:
    """A copy of the rules with one rule weakened must fail ``promtool test rules``: the unit
    tests assert behaviour, not just that the file loads."""
    text = ALERTS.read_text()
    block = _rule_block(text, alert)
    assert original in block, f"{alert}: {original!r} not in its rule"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / ALERTS.name).write_text(
        text.replace(block, block.replace(original, broken))
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / UNIT_TESTS.name).write_text(UNIT_TESTS.read_text())
    assert promtool("check", "rules", tmp_path / "rules" / ALERTS.name).returncode == 0
    result = promtool("test", "rules", tmp_path / "tests" / UNIT_TESTS.name)
    assert result.returncode != 0, f"no unit test noticed the broken {alert}"
    assert f"alertname: {alert}" in result.stdout + result.stderr


def _rule_block(text: str, alert: str) -> str:
    match = re.search(
        rf"      - alert: {alert}\n.*?(?=\n      - alert: |\n  - name: |\Z)", text, re.S
    )
    assert match, alert
    return match.group(0)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel's query (Grafana's variables replaced) as a recording rule."""
    queries = dashboard_queries()
    assert len(queries) >= 30
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": query.promql()}
                    for i, query in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_use_the_provisioned_prometheus() -> None:
    """The data source uid is the one deploy/grafana/provisioning/datasources fixes."""
    for path in DASHBOARDS.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
