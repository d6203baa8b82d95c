"""A throw-away stack for evals: testcontainers when Docker answers, local processes otherwise.

Both give the same :class:`devstack.stack.LocalStack` (the five services as processes), so the
eval runner and its checks are the same; only where Kafka and PostgreSQL come from differs.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.stack import LocalStack, StackConfig

__all__ = ["docker_available", "throwaway_stack"]

log = logging.getLogger(__name__)


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False
    return True


@contextlib.contextmanager
def throwaway_stack(*, use_docker: bool | None = None) -> Iterator[LocalStack]:
    use_docker = docker_available() if use_docker is None else use_docker
    with (
        tempfile.TemporaryDirectory(prefix="support-eval-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        config = StackConfig.ephemeral(Path(tmp))
        if use_docker:
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer

            kafka = cleanup.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.1"))
            pg = cleanup.enter_context(PostgresContainer("postgres:15", driver=None))
            config.external_kafka = kafka.get_bootstrap_server()
            config.database_url = pg.get_connection_url()
            print("  stack      testcontainers: Kafka + PostgreSQL")
        else:
            print("  stack      local processes (no Docker engine here): Tansu + PostgreSQL")
        stack = LocalStack(config)
        stack.up(timeout=300)
        try:
            yield stack
        finally:
            stack.down()
