"""When no PostgreSQL answers, the local stack makes a throw-away cluster of its own."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from devstack import postgres
from devstack.ports import free_port

pytestmark = pytest.mark.integration


def test_throw_away_cluster_starts_serves_and_is_removed(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/support"
    assert not postgres.server_answers(url)
    handle = postgres.ensure_server(url, tmp_path / "pg", port)
    try:
        assert handle.started_by_us
        postgres.create_database(handle.url)
        with psycopg.connect(handle.url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("support",)
    finally:
        handle.stop()
    assert not postgres.server_answers(url)
    assert handle.cluster_dir is not None
    assert not handle.cluster_dir.exists(), "stop() removes the cluster's files"


def test_an_answering_server_is_used_as_it_is(postgres_server: str, tmp_path: Path) -> None:
    handle = postgres.ensure_server(postgres_server, tmp_path / "unused", free_port())
    assert not handle.started_by_us
    assert not (tmp_path / "unused").exists()
