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


def test_a_crashed_throw_away_cluster_is_started_again_with_its_data(tmp_path: Path) -> None:
    port = free_port()
    handle = postgres.start_cluster(tmp_path / "pg", port, dbname="support")
    try:
        postgres.create_database(handle.url)
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        assert postgres.restart_cluster(handle.url, handle.cluster_dir or tmp_path) is None

        handle.halt("immediate")  # as a crash: no shutdown checkpoint
        assert not postgres.server_answers(handle.url)
        again = postgres.restart_cluster(handle.url, handle.cluster_dir or tmp_path)

        assert again is not None and again.cluster_dir == handle.cluster_dir
        with psycopg.connect(handle.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (7,)
    finally:
        handle.stop()
