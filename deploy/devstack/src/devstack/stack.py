"""The whole platform on one machine: broker, database, topics, index, five services.

``make up`` runs :meth:`LocalStack.up` with the services under honcho (one supervisor, the
Procfile in deploy/); tests run the same stack with each Procfile entry as its own process,
so one service can be killed and restarted while the others keep running. ``down`` stops
exactly what ``up`` started, recorded in ``<state>/state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from shared.db.migrate import upgrade

from . import postgres
from .broker import create_topics_sync, start_tansu
from .ports import free_port, port_open
from .seed import seed_demo_data

__all__ = ["REPO", "SERVICES", "LocalStack", "StackConfig"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[4]
DEPLOY = REPO / "deploy"
SERVICES = ("gateway", "retriever", "agent", "approver", "auditor")
DEFAULT_PORTS = {
    "gateway": 8001,
    "retriever": 8002,
    "agent": 8003,
    "approver": 8004,
    "auditor": 8005,
}


@dataclass
class StackConfig:
    state_dir: Path = REPO / ".stack"
    kafka_port: int = 9092
    #: An already running Kafka (e.g. a testcontainer): no Tansu is started, and the Kafka
    #: defaults (idempotent producer, ...) apply instead of deploy/local.env's Tansu tunings.
    external_kafka: str | None = None
    otlp_port: int = 4318
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    database_url: str = "postgresql://postgres@127.0.0.1:5432/support"
    fallback_pg_port: int = 55432
    topic_prefix: str = ""
    knowledge_base: Path = DEPLOY / "knowledge-base"
    supervisor: str = "honcho"  # or "processes" (tests: restartable one by one)
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def ephemeral(cls, state_dir: Path, **kwargs: object) -> StackConfig:
        """Random free ports and a unique database name: for tests next to a running stack."""
        return cls(
            state_dir=state_dir,
            kafka_port=free_port(),
            otlp_port=free_port(),
            ports={s: free_port() for s in SERVICES},
            database_url=f"postgresql://postgres@127.0.0.1:5432/support_e2e_{os.getpid()}",
            fallback_pg_port=free_port(),
            supervisor="processes",
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass
class StackState:
    tansu_pid: int | None = None
    supervisor_pid: int | None = None
    service_pids: dict[str, int] = field(default_factory=dict)
    pg_cluster_dir: str | None = None
    database_url: str = ""
    database_created: bool = False


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state = StackState()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ environment
    @property
    def state_file(self) -> Path:
        return self.config.state_dir / "state.json"

    def env(self) -> dict[str, str]:
        c = self.config
        env = _read_env_file(DEPLOY / "local.env")
        if c.external_kafka:
            env["KAFKA_ENABLE_IDEMPOTENCE"] = "true"
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "KAFKA_TOPIC_PREFIX": c.topic_prefix,
                "DATABASE_URL": self.state.database_url or c.database_url,
                "TELEMETRY_OTLP_ENDPOINT": f"http://127.0.0.1:{c.otlp_port}",
                "OTLP_SINK_PORT": str(c.otlp_port),
                "OTLP_SINK_FILE": str(c.state_dir / "spans.jsonl"),
                "RETRIEVER_INDEX__PATH": str(c.state_dir / "index"),
            }
        )
        for service, port in c.ports.items():
            env[f"{service.upper()}_HTTP__PORT"] = str(port)
        env.update(c.extra_env)
        return env

    @property
    def bootstrap(self) -> str:
        return self.config.external_kafka or f"127.0.0.1:{self.config.kafka_port}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[service]}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.config.otlp_port}"

    # ------------------------------------------------------------------ lifecycle
    def up(self, *, timeout: float = 180.0) -> None:
        c = self.config
        c.state_dir.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists():
            raise RuntimeError(
                f"a stack is already up (state in {self.state_file}); run `make down`"
            )
        try:
            self._start_broker()
            self._prepare_database()
            self._save()
            _step(
                "topics",
                lambda: create_topics_sync(self.bootstrap, prefix=c.topic_prefix),
            )
            _step("migrations", lambda: upgrade(self.state.database_url))
            _step("demo data", lambda: seed_demo_data(self.state.database_url))
            _step("knowledge base", self._ingest)
            self._start_services()
            self._save()
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        state = self._load() or self.state
        if state.supervisor_pid:
            _kill_group(state.supervisor_pid)
        for pid in state.service_pids.values():
            _kill_group(pid)
        for process in self._processes.values():
            _wait(process)
        if state.tansu_pid:
            _kill_group(state.tansu_pid)
        if state.database_created and self.config.supervisor == "processes":
            try:
                postgres.drop_database(state.database_url)
            except Exception:
                log.warning("could not drop %s", state.database_url)
        if state.pg_cluster_dir:
            postgres.PostgresHandle(state.database_url, Path(state.pg_cluster_dir)).stop()
        self.state_file.unlink(missing_ok=True)
        self.state = StackState()

    def _start_broker(self) -> None:
        if self.config.external_kafka:
            print(f"  broker     Kafka at {self.config.external_kafka}")
            return
        port = self.config.kafka_port
        if port_open(port):
            raise RuntimeError(f"port {port} is taken: stop what listens there or set another")
        process = start_tansu(port, self.config.state_dir / "tansu.log")
        self.state.tansu_pid = process.pid
        print(f"  broker     Tansu (memory storage) on 127.0.0.1:{port}")

    def _prepare_database(self) -> None:
        c = self.config
        handle = postgres.ensure_server(c.database_url, c.state_dir / "pg", c.fallback_pg_port)
        self.state.pg_cluster_dir = str(handle.cluster_dir) if handle.cluster_dir else None
        self.state.database_url = handle.url
        postgres.create_database(handle.url)
        self.state.database_created = True
        where = "throw-away cluster" if handle.started_by_us else "server at DATABASE_URL"
        print(f"  database   PostgreSQL ({where}): {_redact_url(handle.url)}")

    def _ingest(self) -> None:
        env = {**os.environ, **self.env()}
        cmd = [
            sys.executable,
            "-m",
            "retriever.cli",
            "ingest",
            str(self.config.knowledge_base),
            "--prune",
        ]
        subprocess.run(cmd, env=env, check=True)

    def _start_services(self) -> None:
        env = {**os.environ, **self.env()}
        _write_env_file(self.config.state_dir / "stack.env", self.env())
        logs = self.config.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        if self.config.supervisor == "honcho":
            out = (logs / "honcho.log").open("ab")
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "honcho",
                    "-f",
                    str(DEPLOY / "Procfile"),
                    "-d",
                    str(REPO),
                    "start",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.state.supervisor_pid = process.pid
            self._processes["honcho"] = process
            return
        for name in procfile():
            self.start_process(name)

    def start_process(self, name: str) -> subprocess.Popen[bytes]:
        """Start one Procfile entry as its own process (test supervisor)."""
        env = {**os.environ, **self.env()}
        out = (self.config.state_dir / "logs" / f"{name}.log").open("ab")
        process = subprocess.Popen(
            shlex.split(procfile()[name].replace("python ", f"{sys.executable} ", 1)),
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._processes[name] = process
        self.state.service_pids[name] = process.pid
        self._save()
        return process

    def kill_process(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self._processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)
        self.state.service_pids.pop(name, None)
        self._save()

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        pending = {s: f"{self.url(s)}/healthz" for s in services}
        pending["otlp-sink"] = f"{self.sink_url}/healthz"
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    try:
                        if client.get(url).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                self._check_alive()
                if not pending:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not healthy after {timeout:.0f}s: {sorted(pending)};"
                        f" see {self.config.state_dir}/logs"
                    )
                time.sleep(0.25)

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.config.state_dir}/logs"
                )

    # ------------------------------------------------------------------ state
    def _save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _load(self) -> StackState | None:
        if not self.state_file.exists():
            return None
        return StackState(**json.loads(self.state_file.read_text()))


def procfile() -> dict[str, str]:
    entries = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def _step(name: str, action: object) -> None:
    started = time.monotonic()
    action()  # type: ignore[operator]
    print(f"  {name:<10} done in {time.monotonic() - started:.1f}s")


def _kill_group(pid: int) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _wait(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def _write_env_file(path: Path, env: Mapping[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))


def _redact_url(url: str) -> str:
    from psycopg import conninfo

    info = conninfo.conninfo_to_dict(url)
    where = f"{info.get('host')}:{info.get('port', 5432)}/{info.get('dbname')}"
    return f"{where} (user {info.get('user')})"
