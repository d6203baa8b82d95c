"""The whole platform on one machine: broker, database, topics, index, five services.

``make up`` runs :meth:`LocalStack.up`: every line of deploy/Procfile becomes a supervisord
program (the gateway line once per replica), supervisord restarts whichever one dies, with
back-off, and leaves the others alone (why supervisord: :mod:`devstack.supervision`). Tests run
exactly the same stack from :meth:`StackConfig.ephemeral` (random ports, a state folder of
their own) and kill programs through :meth:`LocalStack.kill` to watch them come back.

``up`` is idempotent: on a half-started or crashed stack it starts only what is missing
(supervisord, the throw-away PostgreSQL cluster, stopped or FATAL programs). ``down`` stops
exactly what ``up`` started, recorded in ``<state>/state.json``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from psycopg import conninfo

from shared.db.migrate import upgrade

from . import nginx, postgres, prometheus, redis
from .broker import create_topics_sync, topics_exist
from .ports import free_port, port_open
from .seed import seed_demo_data
from .supervision import Program, ProgramInfo, Supervisor, log_timestamp

__all__ = [
    "GATEWAY_REPLICA_PORT_BASE",
    "REPO",
    "SERVICES",
    "LocalStack",
    "ProgramInfo",
    "StackConfig",
    "procfile",
]

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
#: gateway-N for N >= 2 listens on 8010 + N (gateway-2 on 8012, gateway-3 on 8013, ...): the
#: last digit is the replica's number. gateway-1 keeps the gateway's port, 8001.
GATEWAY_REPLICA_PORT_BASE = 8010

# Start order (lower first; supervisord stops in the reverse order, so consumers stop, and
# commit, before the broker goes away; nginx stops first, so no request reaches a stopping
# gateway).
_BROKER_PRIORITY = 10
_SINK_PRIORITY = 20
_SERVICE_PRIORITY = 100
_EDGE_PRIORITY = 200
#: Programs that are no service (no API, no consumer), started after the services: the
#: executor, which serves only /healthz and /metrics (on ``StackConfig.executor_metrics_port``).
_WORKERS = ("executor",)
#: The executor's /metrics and /healthz in the default stack (``make up``).
EXECUTOR_METRICS_PORT = 8006


@dataclass
class StackConfig:
    state_dir: Path = REPO / ".stack"
    kafka_port: int = 9092
    #: An already running Kafka (e.g. a testcontainer): no Tansu is started, and the Kafka
    #: defaults (idempotent producer, ...) apply instead of deploy/local.env's Tansu tunings.
    external_kafka: str | None = None
    otlp_port: int = 4318
    #: One port per service; the gateway's is the first replica's.
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    #: The executor worker's /metrics and /healthz (``APPROVER_EXECUTOR__METRICS_PORT``).
    executor_metrics_port: int = EXECUTOR_METRICS_PORT
    #: Gateway replicas, each its own supervised program (gateway-1, gateway-2, ...).
    gateways: int = 1
    #: Ports of gateway-2 .. gateway-N; empty: GATEWAY_REPLICA_PORT_BASE + N.
    replica_ports: list[int] = field(default_factory=list)
    #: supervisord's control channel: None for a unix socket in the state folder, or a port
    #: for XML-RPC on loopback (with a password; test folders are too deep for socket paths).
    control_port: int | None = None
    database_url: str = "postgresql://postgres@127.0.0.1:5432/support"
    fallback_pg_port: int = 55432
    #: Always run a throw-away PostgreSQL cluster of the stack's own (on fallback_pg_port),
    #: even when a server answers at database_url: one that tests may crash and restart
    #: (:meth:`LocalStack.restart_database`).
    private_postgres: bool = False
    topic_prefix: str = ""
    knowledge_base: Path = DEPLOY / "knowledge-base"
    #: Drop the database on ``down`` (test stacks). The default stack keeps its data.
    drop_database: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    #: nginx (Debian's) in front of the gateway replicas and the approver API, as in compose.
    nginx: bool = True
    nginx_port: int = 8080
    nginx_approver_port: int = 8081
    #: Redis for the shared caches: the one at redis_url if it answers, else redis-server of
    #: the stack's own on redis_port (always our own with private_redis).
    redis_url: str = field(default_factory=lambda: os.environ.get("REDIS_URL", redis.DEFAULT_URL))
    redis_port: int = 56379
    private_redis: bool = False
    #: Prefix of the stack's cache keys. Throw-away stacks get one of their own: stacks that
    #: share one Redis would otherwise serve each other's cached answers, computed on another
    #: database by other code (an eval once scored answers cached by an earlier checkout).
    cache_namespace: str = "platform"
    #: Debian's Prometheus scraping every program, with the alert rules of compose
    #: (:mod:`devstack.prometheus`).
    prometheus: bool = True
    prometheus_port: int = 9090
    prometheus_scrape_interval_s: float = 10.0

    @classmethod
    def ephemeral(cls, state_dir: Path, *, gateways: int = 1, **kwargs: Any) -> StackConfig:
        """Random free ports and a unique database name: for tests next to a running stack.

        No nginx and no Prometheus unless asked for (``nginx=True``, ``prometheus=True``): most
        tests talk to the replicas directly and read no metrics.
        """
        kwargs.setdefault("nginx", False)
        kwargs.setdefault("prometheus", False)
        return cls(
            state_dir=state_dir,
            kafka_port=free_port(),
            otlp_port=free_port(),
            ports={s: free_port() for s in SERVICES},
            executor_metrics_port=free_port(),
            gateways=gateways,
            replica_ports=[free_port() for _ in range(gateways - 1)],
            control_port=free_port(),
            database_url=f"postgresql://postgres@127.0.0.1:5432/support_e2e_{os.getpid()}",
            fallback_pg_port=free_port(),
            nginx_port=free_port(),
            nginx_approver_port=free_port(),
            redis_port=free_port(),
            prometheus_port=free_port(),
            cache_namespace=f"e2e-{os.getpid()}-{secrets.token_hex(3)}",
            drop_database=True,
            **kwargs,
        )

    def gateway_ports(self) -> list[int]:
        if self.gateways < 1:
            raise ValueError("at least one gateway replica")
        extra = self.replica_ports or [
            GATEWAY_REPLICA_PORT_BASE + n for n in range(2, self.gateways + 1)
        ]
        if len(extra) < self.gateways - 1:
            raise ValueError(f"{self.gateways} gateway replicas but ports for {len(extra) + 1}")
        return [self.ports["gateway"], *extra[: self.gateways - 1]]


#: The parts of a config that a running stack fixes: a later ``LocalStack`` on the same state
#: folder adopts them (an ephemeral config made again has other random ports).
_LAYOUT = (
    "kafka_port",
    "external_kafka",
    "otlp_port",
    "ports",
    "gateways",
    "replica_ports",
    "control_port",
    "topic_prefix",
    "drop_database",
    "private_postgres",
    "fallback_pg_port",
    "nginx",
    "nginx_port",
    "nginx_approver_port",
    "redis_port",
    "private_redis",
    "cache_namespace",
    "executor_metrics_port",
    "prometheus",
    "prometheus_port",
    "prometheus_scrape_interval_s",
)


@dataclass
class StackState:
    #: When the stack was started fresh, in supervisord's log format: restarts count from it.
    started_at: str = ""
    layout: dict[str, Any] = field(default_factory=dict)
    supervisord_pid: int | None = None
    control_password: str | None = None
    pg_cluster_dir: str | None = None
    database_url: str = ""
    database_created: bool = False
    #: The knowledge base was ingested completely (an interrupted ``up`` ingests again).
    index_ready: bool = False
    redis_url: str = ""
    #: The stack runs redis-server itself (nothing answered at REDIS_URL).
    own_redis: bool = False


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._legacy_pids: list[int] = []
        loaded = self._load()
        self.state = loaded or StackState()
        #: The layout of a stack already recorded in the state folder (None: nothing is up).
        self.recorded_layout: dict[str, Any] | None = dict(loaded.layout) if loaded else None
        for name, value in (self.recorded_layout or {}).items():
            setattr(self.config, name, value)
        if self.recorded_layout is not None and "prometheus" not in self.recorded_layout:
            # Started before the stack had a Prometheus: its supervisord has no such program,
            # so recovering it must not ask for one (`make down && make up` adds it).
            self.config.prometheus = False

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
                "REDIS_URL": self.state.redis_url or c.redis_url,
                "CACHE_NAMESPACE": c.cache_namespace,
            }
        )
        for service, port in c.ports.items():
            env[f"{service.upper()}_HTTP__PORT"] = str(port)
        env.update(c.extra_env)
        return env

    @property
    def bootstrap(self) -> str:
        return self.config.external_kafka or f"127.0.0.1:{self.config.kafka_port}"

    def gateway_programs(self) -> list[str]:
        return [f"gateway-{n}" for n in range(1, self.config.gateways + 1)]

    def program_names(self) -> list[str]:
        """Every supervised program, in start order."""
        return [
            *self.infrastructure_programs(),
            *self.service_programs(),
            *self.worker_programs(),
            *self.observability_programs(),
        ]

    def infrastructure_programs(self) -> list[str]:
        """What the services need running first: the broker (unless external), the span sink,
        and Redis when the stack runs its own."""
        names = [] if self.config.external_kafka else ["broker"]
        names.append("otlp-sink")
        if self.state.own_redis:
            names.append("redis")
        return names

    def service_programs(self) -> list[str]:
        """The programs that answer ``/healthz``: gateway replicas, the other services, and
        nginx in front (stopped first)."""
        names = [*self.gateway_programs(), *(s for s in SERVICES if s != "gateway")]
        return [*names, "nginx"] if self.config.nginx else names

    def worker_programs(self) -> list[str]:
        """Programs started after the services: the executor (its HTTP port serves only
        /healthz and /metrics)."""
        return list(_WORKERS)

    def observability_programs(self) -> list[str]:
        """Prometheus, started once the programs it scrapes are up (ready at ``/-/ready``)."""
        return ["prometheus"] if self.config.prometheus else []

    def _http_ports(self) -> dict[str, int]:
        replicas = zip(self.gateway_programs(), self.config.gateway_ports(), strict=True)
        ports = {
            **dict(replicas),
            **{s: p for s, p in self.config.ports.items() if s != "gateway"},
            "executor": self.config.executor_metrics_port,
            "otlp-sink": self.config.otlp_port,
        }
        if self.config.nginx:
            # /healthz through nginx answers once a gateway replica behind it does.
            ports["nginx"] = self.config.nginx_port
        if self.config.prometheus:
            ports["prometheus"] = self.config.prometheus_port
        return ports

    def health_url(self, name: str) -> str:
        # Prometheus has no /healthz; /-/ready answers once it serves queries.
        path = "/-/ready" if self._program(name) == "prometheus" else "/healthz"
        return f"{self.url(name)}{path}"

    @property
    def prometheus_url(self) -> str:
        if not self.config.prometheus:
            raise LookupError("this stack runs without Prometheus")
        return self.url("prometheus")

    def metrics_targets(self) -> dict[str, list[str]]:
        """Where each job's ``/metrics`` is: compose's job names, one target per process."""
        c = self.config
        return {
            "gateway": [f"127.0.0.1:{p}" for p in c.gateway_ports()],
            **{s: [f"127.0.0.1:{c.ports[s]}"] for s in SERVICES if s != "gateway"},
            "executor": [f"127.0.0.1:{c.executor_metrics_port}"],
        }

    def prometheus_config(self) -> prometheus.PrometheusConfig:
        c = self.config
        return prometheus.PrometheusConfig(
            targets=self.metrics_targets(),
            listen=f"127.0.0.1:{c.prometheus_port}",
            data_dir=c.state_dir / "prometheus" / "data",
            scrape_interval_s=c.prometheus_scrape_interval_s,
        )

    @property
    def edge_url(self) -> str:
        """nginx in front of the gateway replicas (``make up``; tests with ``nginx=True``)."""
        if not self.config.nginx:
            raise LookupError("this stack runs without nginx")
        return f"http://127.0.0.1:{self.config.nginx_port}"

    @property
    def approver_edge_url(self) -> str:
        if not self.config.nginx:
            raise LookupError("this stack runs without nginx")
        return f"http://127.0.0.1:{self.config.nginx_approver_port}"

    def nginx_config(self) -> nginx.NginxConfig:
        c = self.config
        return nginx.NginxConfig(
            gateway_servers=[f"127.0.0.1:{p}" for p in c.gateway_ports()],
            approver_servers=[f"127.0.0.1:{c.ports['approver']}"],
            agent_servers=[f"127.0.0.1:{c.ports['agent']}"],
            gateway_listen=f"127.0.0.1:{c.nginx_port}",
            approver_listen=f"127.0.0.1:{c.nginx_approver_port}",
            runtime_dir=c.state_dir / "nginx",
            worker_processes="1",
        )

    def url(self, name: str) -> str:
        """A service's or program's base URL; ``gateway`` is the first replica."""
        return f"http://127.0.0.1:{self._http_ports()[self._program(name)]}"

    def gateway_urls(self) -> list[str]:
        return [self.url(name) for name in self.gateway_programs()]

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.config.otlp_port}"

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(
            self.config.state_dir,
            self._programs(),
            environment=self.env(),
            control_port=self.config.control_port,
            password=self.state.control_password,
            since=self.state.started_at or None,
        )

    def _programs(self) -> list[Program]:
        entries = procfile()

        def command(name: str) -> str:
            argv = shlex.split(entries[name])
            if argv[0] == "python":  # the interpreter of this environment, as `uv run` gives it
                argv[0] = sys.executable
            return shlex.join(argv)

        programs = []
        if not self.config.external_kafka:
            programs.append(
                Program("broker", command("broker"), directory=REPO, priority=_BROKER_PRIORITY)
            )
        programs.append(
            Program("otlp-sink", command("otlp-sink"), directory=REPO, priority=_SINK_PRIORITY)
        )
        for name, port in zip(self.gateway_programs(), self.config.gateway_ports(), strict=True):
            programs.append(
                Program(
                    name,
                    command("gateway"),
                    environment={"GATEWAY_HTTP__PORT": str(port)},
                    directory=REPO,
                    priority=_SERVICE_PRIORITY,
                )
            )
        # The approver API leaves execution, relay and sweeps to the executor program, as the
        # approver and executor services split them in compose.
        only_api = {
            "approver": {"APPROVER_BACKGROUND": "false"},
            "executor": {"APPROVER_EXECUTOR__METRICS_PORT": str(self.config.executor_metrics_port)},
        }
        programs.extend(
            Program(
                service,
                command(service),
                environment=only_api.get(service, {}),
                directory=REPO,
                priority=_SERVICE_PRIORITY,
            )
            for service in (*(s for s in SERVICES if s != "gateway"), *_WORKERS)
        )
        if self.state.own_redis:
            argv = redis.server_command(self.config.redis_port, self.config.state_dir)
            programs.append(
                Program("redis", shlex.join(argv), directory=REPO, priority=_BROKER_PRIORITY)
            )
        if self.config.nginx:
            runtime = self.config.state_dir / "nginx"
            argv = [*shlex.split(entries["nginx"]), "-c", str(runtime / "nginx.conf")]
            argv += ["-p", str(runtime), "-e", "stderr", "-g", "daemon off;"]
            argv[0] = nginx.binary() or argv[0]
            programs.append(
                Program("nginx", shlex.join(argv), directory=REPO, priority=_EDGE_PRIORITY)
            )
        if self.config.prometheus:
            argv = prometheus.command(self._prometheus_conf_path, self.prometheus_config())
            programs.append(
                Program("prometheus", shlex.join(argv), directory=REPO, priority=_SINK_PRIORITY)
            )
        return programs

    @property
    def _prometheus_conf_path(self) -> Path:
        return self.config.state_dir / "prometheus" / "prometheus.yml"

    def _write_prometheus_config(self) -> None:
        if not self.config.prometheus:
            return
        if prometheus.binary() is None:
            raise RuntimeError(
                "prometheus is not installed (Debian: apt-get install prometheus;"
                " deploy/apt-packages.txt), or start without it: devstack up --no-prometheus"
            )
        config = self.prometheus_config()
        config.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self._prometheus_conf_path
        conf.write_text(prometheus.render(config))
        checked = prometheus.check(conf)
        if checked.returncode != 0:
            raise RuntimeError(f"promtool refused {conf}: {checked.stdout}{checked.stderr}")

    # ------------------------------------------------------------------ lifecycle
    def up(self, *, timeout: float = 180.0) -> list[str]:
        """Start the stack, or bring back what is missing of one; return what had to be done.

        A fresh start that fails is rolled back (``down``). A recovery that fails leaves the
        stack as it is, for a look at its logs and another ``up``.
        """
        c = self.config
        c.state_dir.mkdir(parents=True, exist_ok=True)
        if self._legacy_pids:
            raise RuntimeError(
                f"a stack started by an older devstack (honcho) is recorded in {self.state_file};"
                " run `make down` first"
            )
        fresh = self.recorded_layout is None
        actions: list[str] = []
        try:
            if fresh:
                self._start_fresh()
            else:
                print(f"  recovering the stack recorded in {self.state_file}")
            actions += self._prepare_database()
            self._write_nginx_config()
            self._write_prometheus_config()
            self._save()
            supervisor = self.supervisor
            actions += supervisor.ensure()
            self.state.supervisord_pid = supervisor.pid()
            self._save()
            _write_env_file(c.state_dir / "stack.env", self.env())
            # The broker and its topics first: consumers joining a group need their topics.
            actions += _started(supervisor.start_programs(self.infrastructure_programs()))
            _step("broker", self._wait_broker)
            if self.state.own_redis:
                _step("redis", self._wait_redis)
            _step("migrations", lambda: upgrade(self.state.database_url))
            _step("demo data", lambda: seed_demo_data(self.state.database_url))
            if self.state.index_ready and (c.state_dir / "index").exists():
                # Ingested by this stack already, and the retriever may be running with the
                # index open (one process at a time may open it).
                print(f"  {'knowledge base':<10} kept (index in {c.state_dir / 'index'})")
            else:
                _step("knowledge base", self._ingest)
                self.state.index_ready = True
                self._save()
            actions += _started(
                supervisor.start_programs(
                    [
                        *self.service_programs(),
                        *self.worker_programs(),
                        *self.observability_programs(),
                    ]
                )
            )
            self.wait_healthy(timeout=timeout)
        except BaseException:
            if fresh:
                self.down()
            raise
        return actions

    def _start_fresh(self) -> None:
        c = self.config
        # Leftovers of a stack whose state file was removed (say, `make clean` while it ran):
        # this state folder's supervisord and anything it started.
        self.supervisor.shutdown(timeout=30)
        taken = [
            f"{port} ({name})" for name, port in self._ports_to_bind().items() if port_open(port)
        ]
        if taken:
            raise RuntimeError(
                f"port(s) taken: {', '.join(taken)}; stop what listens there or choose others"
            )
        own_redis = c.private_redis or not redis.answers(c.redis_url)
        self.state = StackState(
            started_at=log_timestamp(),
            layout={name: getattr(c, name) for name in _LAYOUT},
            # Only for XML-RPC on loopback; a unix socket is protected by its file mode.
            control_password=secrets.token_urlsafe(18) if c.control_port is not None else None,
            redis_url=f"redis://127.0.0.1:{c.redis_port}/0" if own_redis else c.redis_url,
            own_redis=own_redis,
        )
        if own_redis and port_open(c.redis_port):
            raise RuntimeError(f"port taken: {c.redis_port} (redis); stop what listens there")
        where = "our own redis-server" if own_redis else "the server at REDIS_URL"
        print(f"  redis      {where}: {_redact_redis(self.state.redis_url)}")
        self.recorded_layout = dict(self.state.layout)
        self._save()

    def _ports_to_bind(self) -> dict[str, int]:
        ports = self._http_ports()
        if not self.config.external_kafka:
            ports["broker"] = self.config.kafka_port
        if self.config.control_port is not None:
            ports["supervisord"] = self.config.control_port
        if self.config.private_postgres:
            ports["postgres"] = self.config.fallback_pg_port
        if self.config.nginx:
            ports["nginx (approver)"] = self.config.nginx_approver_port
        ports["executor (metrics)"] = self.config.executor_metrics_port
        return ports

    def _write_nginx_config(self) -> None:
        if not self.config.nginx:
            return
        if nginx.binary() is None:
            raise RuntimeError(
                "nginx is not installed (Debian: apt-get install nginx; deploy/apt-packages.txt)"
            )
        config = self.nginx_config()
        assert config.runtime_dir is not None
        nginx.prepare_runtime(config.runtime_dir)
        conf = config.runtime_dir / "nginx.conf"
        conf.write_text(nginx.render(config))
        checked = nginx.check(conf, config.runtime_dir)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused {conf}: {checked.stderr.strip()}")

    def _wait_redis(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not redis.answers(self.state.redis_url):
            if time.monotonic() > deadline:
                log_file = self.supervisor.program_log("redis")
                raise TimeoutError(f"redis not answering after {timeout:.0f}s; see {log_file}")
            time.sleep(0.1)

    def down(self) -> None:
        state = self._load() or self.state
        for pid in self._legacy_pids:
            _kill_group(pid)
        self.supervisor.shutdown()
        if state.database_created and self.config.drop_database:
            try:
                postgres.drop_database(state.database_url)
            except Exception:
                log.warning("could not drop %s", state.database_url)
        if self.config.drop_database and state.redis_url and not state.own_redis:
            # A throw-away stack leaves no cache keys behind in a Redis it did not start.
            redis.purge_namespace(state.redis_url, self.config.cache_namespace)
        if state.pg_cluster_dir:
            postgres.PostgresHandle(state.database_url, Path(state.pg_cluster_dir)).stop()
        self.state_file.unlink(missing_ok=True)
        self.state = StackState()
        self.recorded_layout = None
        self._legacy_pids = []

    def _prepare_database(self) -> list[str]:
        c = self.config
        state = self.state
        if state.database_url and state.pg_cluster_dir:
            handle = postgres.restart_cluster(state.database_url, Path(state.pg_cluster_dir))
            if handle is None:
                return []
            state.pg_cluster_dir = str(handle.cluster_dir)
            postgres.create_database(state.database_url)
            return ["started the throw-away PostgreSQL cluster again"]
        if state.database_url:
            if not postgres.server_answers(state.database_url):
                raise RuntimeError(
                    f"PostgreSQL at {_redact_url(state.database_url)} does not answer;"
                    " start it (this stack did not start it) and run `make up` again"
                )
            postgres.create_database(state.database_url)
            return []
        if c.private_postgres:
            dbname = str(conninfo.conninfo_to_dict(c.database_url).get("dbname") or "support")
            handle = postgres.start_cluster(c.state_dir / "pg", c.fallback_pg_port, dbname=dbname)
        else:
            handle = postgres.ensure_server(c.database_url, c.state_dir / "pg", c.fallback_pg_port)
        state.pg_cluster_dir = str(handle.cluster_dir) if handle.cluster_dir else None
        state.database_url = handle.url
        postgres.create_database(handle.url)
        state.database_created = True
        where = "throw-away cluster" if handle.started_by_us else "server at DATABASE_URL"
        print(f"  database   PostgreSQL ({where}): {_redact_url(handle.url)}")
        return []

    def restart_database(self, *, mode: Literal["fast", "immediate"] = "immediate") -> None:
        """Stop the stack's own PostgreSQL cluster (``immediate``: a crash) and start it again.

        Only a throw-away cluster the stack started (``private_postgres``, or no server at
        DATABASE_URL) can be restarted; a shared server is never touched.
        """
        if not self.state.pg_cluster_dir:
            raise RuntimeError(
                "this stack uses the server at DATABASE_URL, not a cluster of its own"
            )
        handle = postgres.PostgresHandle(self.state.database_url, Path(self.state.pg_cluster_dir))
        handle.halt(mode)
        self._prepare_database()
        self._save()

    def _wait_broker(self, timeout: float = 60.0) -> None:
        c = self.config
        if c.external_kafka:
            partitions = int(self.env().get("KAFKA_PARTITIONS", "6"))
            create_topics_sync(self.bootstrap, prefix=c.topic_prefix, partitions=partitions)
            return
        supervisor = self.supervisor
        deadline = time.monotonic() + timeout
        while not (port_open(c.kafka_port) and topics_exist(self.bootstrap, c.topic_prefix)):
            if supervisor.states().get("broker") == "FATAL":
                raise RuntimeError(f"the broker is FATAL; see {supervisor.program_log('broker')}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"broker not ready after {timeout:.0f}s; see {supervisor.program_log('broker')}"
                )
            time.sleep(0.1)

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

    def wait_healthy(self, names: Sequence[str] | None = None, timeout: float = 180.0) -> None:
        """Wait until each program's ``/healthz`` answers 200 (default: every HTTP program).

        ``broker`` may be named too: it is ready when it has every platform topic (a RUNNING
        broker runner may still be starting Tansu). Fails at once when a program is FATAL
        (supervisord gave up on it); one in BACKOFF is still being retried, so it is waited for.
        """
        wanted = [self._program(n) for n in names] if names else list(self._http_ports())
        if "otlp-sink" not in wanted:
            wanted.append("otlp-sink")
        if "broker" in wanted:
            wanted.remove("broker")
            self._wait_broker(timeout=timeout)
        pending = {name: self.health_url(name) for name in wanted}
        supervisor = self.supervisor
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    try:
                        if client.get(url).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if not pending:
                    return
                fatal = [n for n, s in supervisor.states().items() if s == "FATAL" and n in pending]
                if fatal:
                    raise RuntimeError(
                        f"{', '.join(fatal)} failed to start (FATAL);"
                        f" see {supervisor.logs_dir}/<program>.log"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"not healthy after {timeout:.0f}s: {sorted(pending)};"
                        f" see {supervisor.logs_dir}"
                    )
                time.sleep(0.25)

    # ------------------------------------------------------------------ programs (tests, status)
    def programs(self) -> dict[str, ProgramInfo]:
        """State, pid, uptime and restarts of every supervised program."""
        return self.supervisor.programs_info()

    def pid(self, name: str) -> int:
        pid = self.supervisor.info(self._program(name)).pid
        if pid is None:
            raise LookupError(f"{name} is not running")
        return pid

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal the program's process group (SIGKILL: a crash); return the pid it had."""
        return self.supervisor.kill(self._program(name), sig)

    def wait_running(
        self, name: str, *, new_pid_than: int | None = None, timeout: float = 60.0
    ) -> int:
        """Wait until supervisord has the program RUNNING again (with a new pid); its pid."""
        return self.supervisor.wait_running(
            self._program(name), new_pid_than=new_pid_than, timeout=timeout
        )

    def restarts(self, name: str) -> int:
        """Unexpected exits of the program since the stack was started (each one restarted)."""
        return self.supervisor.restarts().get(self._program(name), 0)

    def rss_bytes(self, name: str) -> int:
        """Resident memory of the program and its children (the broker: runner + Tansu)."""
        return self.supervisor.rss_bytes(self._program(name))

    def start(self, name: str) -> None:
        self.supervisor.start_programs([self._program(name)])

    def stop(self, name: str) -> None:
        """Stop a program on purpose (not a crash: it stays stopped, no restart counted)."""
        self.supervisor.stop_program(self._program(name))

    def _program(self, name: str) -> str:
        return "gateway-1" if name == "gateway" else name

    # ------------------------------------------------------------------ state
    def _save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _load(self) -> StackState | None:
        if not self.state_file.exists():
            return None
        data = json.loads(self.state_file.read_text())
        if "layout" not in data:
            # Written by the honcho-era devstack: only its pids are of any use (to `down`).
            self._legacy_pids = [
                pid
                for pid in (
                    data.get("supervisor_pid"),
                    data.get("tansu_pid"),
                    *(data.get("service_pids") or {}).values(),
                )
                if pid
            ]
            return StackState(
                pg_cluster_dir=data.get("pg_cluster_dir"),
                database_url=data.get("database_url", ""),
                database_created=bool(data.get("database_created")),
            )
        known = {f.name for f in fields(StackState)}
        return StackState(**{k: v for k, v in data.items() if k in known})


def procfile() -> dict[str, str]:
    entries = {}
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def _started(names: list[str]) -> list[str]:
    return [f"started {name}" for name in names]


def _step(name: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    action()
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


def _redact_redis(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path}"


def _redact_url(url: str) -> str:
    info = conninfo.conninfo_to_dict(url)
    where = f"{info.get('host')}:{info.get('port', 5432)}/{info.get('dbname')}"
    return f"{where} (user {info.get('user')})"
