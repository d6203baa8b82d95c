"""A throw-away stack for evals: testcontainers when Docker answers, local processes otherwise.

Both give the same :class:`devstack.stack.LocalStack` (the five services as processes), so the
eval runner and its checks are the same; only where Kafka and PostgreSQL come from differs.
The stack ingests the knowledge base it is given, and a file of it that cannot be ingested
is recorded (:attr:`EvalStack.ingest_failures`) instead of stopping the stack.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.stack import LocalStack, StackConfig

__all__ = [
    "EvalStack",
    "docker_available",
    "docker_probe",
    "ingest_failures",
    "throwaway_stack",
]

log = logging.getLogger(__name__)

#: What `retriever ingest` prints to stderr for each file it could not ingest; the message
#: names the file (retriever.documents.DocumentError) and says why.
_FAILED = "failed:"
#: Its exit code when some files failed and the others were ingested (2 is a usage or index
#: layout error, which stops the stack like any other failure).
_SOME_FAILED = 1

#: The eval asks all its cases within a minute or two, many of them actions of one tenant:
#: far above the per-tenant burst of proposals a real tenant is allowed (agent.settings
#: RateLimitSettings). The rate limiter is not what the eval measures, so it is widened
#: here instead of making action cases fail by the order they happen to run in.
_EVAL_ENV = {
    "AGENT_RATE_LIMIT__PROPOSE_BURST": "1000",
    "AGENT_RATE_LIMIT__PROPOSE_PER_MINUTE": "6000",
    "AGENT_RATE_LIMIT__READ_BURST": "1000",
    "AGENT_RATE_LIMIT__READ_PER_MINUTE": "6000",
}


class _IngestTolerantStack(LocalStack):
    """LocalStack whose ingestion reports unreadable files instead of failing the stack.

    ``LocalStack._ingest`` runs ``retriever ingest`` with ``check=True``, and the CLI exits 1
    when any file failed (after ingesting the rest), so one bad file would stop the stack.
    """

    def __init__(self, config: StackConfig) -> None:
        super().__init__(config)
        self.ingest_failures: list[str] = []

    def _ingest(self) -> None:
        self.ingest_failures = []
        command = [
            sys.executable,
            "-m",
            "retriever.cli",
            "ingest",
            str(self.config.knowledge_base),
            "--prune",
        ]
        done = subprocess.run(
            command, env={**os.environ, **self.env()}, capture_output=True, text=True, check=False
        )
        sys.stdout.write(done.stdout)
        failures = ingest_failures(done.returncode, done.stderr)
        if failures is None:
            sys.stderr.write(done.stderr)
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        self.ingest_failures = failures
        for failure in failures:
            print(f"  not ingested: {failure}")


def ingest_failures(returncode: int, stderr: str) -> list[str] | None:
    """The files `retriever ingest` could not ingest, each as "<file>: <why>" (the first line
    of its message), or None when the ingestion itself failed."""
    failures = [
        line.strip().removeprefix(_FAILED).strip()
        for line in stderr.splitlines()
        if line.strip().startswith(_FAILED)
    ]
    if returncode == 0 or (returncode == _SOME_FAILED and failures):
        return failures
    return None


@dataclass
class EvalStack:
    stack: LocalStack
    #: "testcontainers" or "local processes".
    kind: str
    #: Why this kind ran (whether a Docker engine answered, or what was asked for).
    reason: str
    ingest_failures: list[str] = field(default_factory=list)


def docker_probe() -> tuple[bool, str]:
    """Whether a Docker engine answers, and what was found either way."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # no engine, no socket, no permission: all mean "not here"
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"no Docker engine answered ({type(exc).__name__}: {first_line[:100]})"
    return True, "a Docker engine answered"


def docker_available() -> bool:
    return docker_probe()[0]


@contextlib.contextmanager
def throwaway_stack(
    *, use_docker: bool | None = None, knowledge_base: Path | None = None
) -> Iterator[EvalStack]:
    if use_docker is None:
        use_docker, reason = docker_probe()
    else:
        reason = f"asked for with --docker {'yes' if use_docker else 'no'}"
    with (
        tempfile.TemporaryDirectory(prefix="support-eval-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        config = StackConfig.ephemeral(Path(tmp), extra_env=dict(_EVAL_ENV))
        if knowledge_base is not None:
            config.knowledge_base = knowledge_base
        if use_docker:
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer

            kafka = cleanup.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.1"))
            pg = cleanup.enter_context(PostgresContainer("postgres:15", driver=None))
            config.external_kafka = kafka.get_bootstrap_server()
            config.database_url = pg.get_connection_url()
            kind = "testcontainers"
            print(f"  stack      testcontainers: Kafka + PostgreSQL ({reason})")
        else:
            kind = "local processes"
            print(f"  stack      local processes: Tansu + PostgreSQL ({reason})")
        stack = _IngestTolerantStack(config)
        stack.up(timeout=300)
        try:
            yield EvalStack(stack, kind, reason, list(stack.ingest_failures))
        finally:
            stack.down()
