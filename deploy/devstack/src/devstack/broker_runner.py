"""``python -m devstack.broker_runner``: the local broker as one supervised program.

Starts Tansu on the port of ``KAFKA_BOOTSTRAP_SERVERS``, waits until it listens, creates the
platform's topics (idempotent: ``shared.messaging.admin.create_topics`` with ``KAFKA_*``
settings), then waits on Tansu and exits with its status. supervisord restarts the runner when
it exits, so a crashed broker comes back *with its topics*, which consumers need before
they can join their groups (auto-created topics would get Tansu's partition count, not
``KAFKA_PARTITIONS``).

What it cannot bring back: Tansu's memory storage (the only storage in the packaged build)
loses every message and committed offset on a restart. Requests in flight at that moment are
lost; that is a property of the local broker, not of the platform, which runs Apache Kafka in
production (compose.yaml).

Tansu runs in the runner's process group, so supervisord's ``killasgroup``/``stopasgroup``
reach it; SIGTERM and SIGINT sent to the runner alone are forwarded; and on Linux Tansu is
told to die with the runner (``PR_SET_PDEATHSIG``), so a runner killed on its own never leaves
a Tansu holding the port its successor needs.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import subprocess
import sys
import time
from types import FrameType

from shared.settings import KafkaSettings

from .broker import create_topics, tansu_command
from .ports import port_open

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT_S = 20.0
_PORT_FREE_TIMEOUT_S = 10.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _status(returncode: int) -> int:
    """A shell-style exit status: 128 + signal number for a process killed by a signal."""
    return 128 - returncode if returncode < 0 else returncode


def main() -> int:
    settings = KafkaSettings()
    bootstrap = settings.bootstrap_servers.split(",")[0].strip()
    host, _, port_text = bootstrap.rpartition(":")
    port = int(port_text)
    if host not in ("127.0.0.1", "localhost"):
        print(f"broker-runner: {bootstrap} is not on loopback; refusing", flush=True)
        return 2
    # The Tansu of a runner that was just killed is still shutting down (it gets SIGTERM when
    # its runner dies): wait for the port. Anything holding it longer is not ours.
    deadline = time.monotonic() + _PORT_FREE_TIMEOUT_S
    while port_open(port):
        if time.monotonic() > deadline:
            print(f"broker-runner: port {port} is taken; stop what listens there", flush=True)
            return 1
        time.sleep(0.1)

    tansu = subprocess.Popen(tansu_command(port), preexec_fn=_die_with_parent)

    def forward(signum: int, _frame: FrameType | None) -> None:
        tansu.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not port_open(port):
        if tansu.poll() is not None:
            print(f"broker-runner: tansu exited with {tansu.returncode} at start", flush=True)
            return _status(tansu.returncode) or 1
        if time.monotonic() > deadline:
            print(f"broker-runner: tansu not listening after {_READY_TIMEOUT_S:.0f}s", flush=True)
            tansu.kill()
            tansu.wait()
            return 1
        time.sleep(0.02)
    try:
        created = asyncio.run(
            create_topics(
                bootstrap,
                prefix=settings.topic_prefix,
                partitions=settings.partitions,
                replication=settings.replication_factor,
            )
        )
    except Exception as exc:
        print(f"broker-runner: could not create topics: {exc!r}", flush=True)
        tansu.terminate()
        tansu.wait()
        return 1
    print(
        f"broker-runner: tansu (pid {tansu.pid}) on {bootstrap}, memory storage;"
        f" {len(created)} topic(s) created",
        flush=True,
    )
    return _status(tansu.wait())


if __name__ == "__main__":
    sys.exit(main())
