"""The local stack's process manager: supervisord, configured and driven from Python.

Why supervisord (the ``supervisor`` package, maintained since 2004, 4.x on Python 3):

* **It restarts only the process that died.** honcho (and foreman) treat the Procfile as one
  unit: when any process exits they stop all the others, so one SIGKILLed service took the
  whole local platform down. supervisord restarts the dead program alone (``autorestart``),
  with a back-off for programs that die during start-up (``startsecs``, ``startretries``, the
  BACKOFF state, then FATAL instead of a tight crash loop).
* **It bounds its files.** Each program's output and supervisord's own log are rotated by size
  (``*_logfile_maxbytes`` / ``*_logfile_backups``); honcho wrote one ever-growing file.
* **It can be asked.** A control socket answers XML-RPC (state, pid, start time of every
  program; start/stop) and ``supervisorctl`` works against the generated configuration, so
  ``make status``, the tests and a human all see the same thing.
* circus does the same job but is far less used and brings ZeroMQ (pyzmq) and tornado along
  for a control channel supervisord has built in; systemd user units are not available in
  every container or CI runner, and the stack must run wherever ``uv sync`` runs.

Restart counting: supervisord keeps no counter. Every exit it did not expect (a crash, a
SIGKILL, an exit before ``startsecs``) is logged as ``exited: <name> (...; not expected)``
in its own log, which we rotate and keep anyway; :meth:`Supervisor.restarts` counts those
lines (current and rotated files) since the stack was started. An event listener would be one
more process to supervise, and its bounded event buffer drops events exactly during a crash
storm, when the count matters; the log line is written by supervisord itself, in the same
step as the restart decision.

Orphans: when supervisord itself is SIGKILLed, its programs keep running (re-parented to
init). Every program carries ``DEVSTACK_SUPERVISOR_CONF=<this configuration's path>`` in its
environment (inherited by its own children), so :meth:`Supervisor.orphans` finds exactly this
stack's processes, however often they were restarted, and never another stack's or an
unrelated process that reused a pid.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil

__all__ = [
    "ACTIVE_STATES",
    "MARKER_ENV",
    "Program",
    "ProgramInfo",
    "Supervisor",
    "SupervisorError",
    "log_timestamp",
    "quote_command",
]

#: Environment variable every supervised process carries: the absolute path of its
#: supervisord configuration (how orphans of a dead supervisord are recognised).
MARKER_ENV = "DEVSTACK_SUPERVISOR_CONF"

#: States in which supervisord is already taking care of a program (running, or about to be).
ACTIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})

_MB = 1024 * 1024
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_EXIT_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARN exited: (?P<name>\S+) \(.*not expected\)$"
)
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Python 3's configparser, as supervisor configures it, cuts a value at ";" or "#" that
# follows whitespace (inline comments); such values cannot be written safely.
_INLINE_COMMENT = re.compile(r"\s[;#]")


class SupervisorError(RuntimeError):
    """supervisord could not be started, reached or asked to do something."""


@dataclass(frozen=True)
class Program:
    """One ``[program:x]`` section: one line of deploy/Procfile, or one gateway replica."""

    name: str
    command: str
    #: On top of the ``[supervisord]`` environment that every program inherits.
    environment: Mapping[str, str] = field(default_factory=dict)
    directory: Path | None = None
    #: Lower starts first and stops last: the broker outlives its consumers on shutdown, so
    #: they can commit their offsets.
    priority: int = 100
    #: A program must stay up this long to count as started. An exit before that is a failed
    #: start: BACKOFF (retried after 1 s, 2 s, 3 s, ...), FATAL after ``startretries`` in a row.
    startsecs: int = 3
    startretries: int = 5
    stopwaitsecs: int = 15


@dataclass(frozen=True)
class ProgramInfo:
    """What supervisord reports about one program, plus the restarts counted from its log."""

    state: str
    pid: int | None
    uptime_s: float | None
    restarts: int


def log_timestamp(when: float | None = None) -> str:
    """A time in the format of supervisord's log lines (local time, milliseconds)."""
    now = time.time() if when is None else when
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"


class Supervisor:
    """A supervisord for one state folder: its configuration, its daemon and its programs.

    The control channel is a unix socket in the state folder (only its owner may connect), or,
    when ``control_port`` is given, HTTP on loopback with a random password: unix socket paths
    are limited to 107 bytes, which deep pytest temporary folders exceed.
    """

    def __init__(
        self,
        state_dir: Path,
        programs: Sequence[Program],
        *,
        environment: Mapping[str, str] | None = None,
        control_port: int | None = None,
        password: str | None = None,
        log_max_bytes: int = 10 * _MB,
        log_backups: int = 3,
        since: str | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.programs = {p.name: p for p in programs}
        self.environment = dict(environment or {})
        self.control_port = control_port
        if password is None and control_port is not None:
            password = secrets.token_urlsafe(18)
        self.password = password
        self.log_max_bytes = log_max_bytes
        self.log_backups = log_backups
        #: Restarts are counted from log lines at or after this time (see :meth:`restarts`).
        self.since = since

    # ------------------------------------------------------------------ files
    @property
    def conf_path(self) -> Path:
        return self.state_dir / "supervisord.conf"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "supervisord.pid"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "supervisord.sock"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def logfile(self) -> Path:
        return self.logs_dir / "supervisord.log"

    def program_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    @property
    def server_url(self) -> str:
        if self.control_port is not None:
            return f"http://127.0.0.1:{self.control_port}"
        return f"unix://{self.socket_path}"

    def render(self) -> str:
        """The configuration file: every setting explained where it is not obvious."""
        logs = self.logs_dir
        lines = [
            "; Generated by devstack (deploy/devstack/src/devstack/supervision.py) from",
            "; deploy/Procfile; `make up` rewrites it. Control it with",
            f";   supervisorctl -c {self.conf_path} status",
            "",
        ]
        if self.control_port is None:
            if len(str(self.socket_path).encode()) > _MAX_SOCKET_PATH:
                raise ValueError(
                    f"{self.socket_path} is too long for a unix socket: give a control_port"
                )
            lines += [
                "[unix_http_server]",
                f"file={_value(str(self.socket_path))}",
                "; Only the owner may connect: the socket can start and stop programs.",
                "chmod=0700",
            ]
        else:
            lines += [
                "[inet_http_server]",
                "; Loopback only, with a password: for tests whose folders are too deep for",
                "; a unix socket path.",
                f"port=127.0.0.1:{self.control_port}",
                "username=devstack",
                f"password={_value(self.password or '')}",
            ]
        lines += [
            "",
            "[supervisord]",
            f"logfile={_value(str(self.logfile))}",
            "; supervisord's own log is rotated like the programs' logs.",
            f"logfile_maxbytes={self.log_max_bytes}",
            f"logfile_backups={self.log_backups}",
            "; info: every spawn, exit and state change (restarts are counted from it).",
            "loglevel=info",
            f"pidfile={_value(str(self.pidfile))}",
            "; Daemonised: it outlives `make up`, and its start-up errors (a taken port, a bad",
            "; setting) still reach `make up`, because they happen before it forks.",
            "nodaemon=false",
            f"directory={_value(str(self.state_dir))}",
            f"childlogdir={_value(str(logs))}",
        ]
        if os.geteuid() == 0:
            # Says "run as root on purpose" (else supervisord logs a CRIT line on every start).
            lines.append("user=root")
        lines += [
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl={_value(self.server_url)}",
        ]
        if self.control_port is not None:
            lines += ["username=devstack", f"password={_value(self.password or '')}"]
        for program in sorted(self.programs.values(), key=lambda p: (p.priority, p.name)):
            log = self.program_log(program.name)
            lines += [
                "",
                f"[program:{program.name}]",
                f"command={_value(program.command)}",
                f"directory={_value(str(program.directory or self.state_dir))}",
                f"priority={program.priority}",
                "; devstack starts programs itself, in dependency order (broker, then migrations",
                "; and the index, then consumers); from then on supervisord restarts them.",
                "autostart=false",
                "autorestart=true",
                f"startsecs={program.startsecs}",
                f"startretries={program.startretries}",
                "stopsignal=TERM",
                f"stopwaitsecs={program.stopwaitsecs}",
                "; Signals go to the whole process group: no child outlives its program.",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={_value(str(log))}",
                f"stdout_logfile_maxbytes={self.log_max_bytes}",
                f"stdout_logfile_backups={self.log_backups}",
            ]
            # The whole environment in each program, not once in [supervisord]: supervisor
            # expands that one twice, so a "%" in a value would need escaping twice.
            environment = {
                **self.environment,
                **program.environment,
                MARKER_ENV: str(self.conf_path),
            }
            lines.append(f"environment={_environment(environment)}")
        return "\n".join(lines) + "\n"

    def write_conf(self) -> Path:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        text = self.render()
        # 0600: the file holds the stack's environment and, for tests, a control password.
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        self.conf_path.chmod(0o600)
        return self.conf_path

    # ------------------------------------------------------------------ the daemon
    def pid(self) -> int | None:
        """The pid of this configuration's supervisord when it is alive, else None.

        The pidfile alone is not trusted: a pid can be reused after a crash, so the process must
        also be a supervisord started with this configuration file.
        """
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            cmdline = process.cmdline()
        except psutil.Error:
            return None
        if any("supervisord" in part for part in cmdline) and str(self.conf_path) in cmdline:
            return pid
        return None

    def answers(self) -> bool:
        try:
            state = self._call("supervisor.getState", timeout=3.0)
        except (SupervisorError, xmlrpc.client.Fault):
            return False
        return bool(state.get("statename") == "RUNNING")

    def start(self, *, timeout: float = 30.0) -> int:
        """Start supervisord (no program yet: see :meth:`start_programs`) and wait for it."""
        self.write_conf()
        self.pidfile.unlink(missing_ok=True)
        launched = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if launched.returncode != 0:
            raise SupervisorError(
                "supervisord did not start:"
                f" {(launched.stderr or launched.stdout).strip() or launched.returncode}"
                f" (configuration {self.conf_path}, log {self.logfile})"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is not None and self.answers():
                return pid
            time.sleep(0.05)
        raise SupervisorError(
            f"supervisord did not answer within {timeout:.0f}s; see {self.logfile}"
        )

    def ensure(self, *, timeout: float = 30.0) -> list[str]:
        """Make sure this configuration's supervisord runs; say what had to be done.

        A live supervisord that answers is kept as it is (with its programs). A dead one is
        started again with the same configuration, after its orphaned programs are killed: they
        would hold the ports the new programs need.
        """
        actions: list[str] = []
        pid = self.pid()
        if pid is not None and self.answers():
            return actions
        if pid is not None:
            actions.append(f"supervisord (pid {pid}) did not answer: stopped it")
            with contextlib.suppress(psutil.NoSuchProcess):
                _terminate([psutil.Process(pid)], grace=10.0)
        killed = self.kill_orphans()
        if killed:
            actions.append(f"killed {len(killed)} orphaned process(es) of a dead supervisord")
        self.start(timeout=timeout)
        actions.append("started supervisord" if not actions else "started supervisord again")
        return actions

    def shutdown(self, *, timeout: float = 60.0) -> None:
        """Stop every program (services first: reverse priority), then supervisord itself."""
        pid = self.pid()
        if pid is not None:
            try:
                self._call("supervisor.shutdown", timeout=5.0)
            except (SupervisorError, xmlrpc.client.Fault):
                # Not answering: SIGTERM is supervisord's own "stop everything and exit" signal.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            if not _wait_gone([pid], timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # its programs are then orphans: below
        # A supervisord that died (or was just killed) left its programs running.
        self.kill_orphans()

    def orphans(self) -> list[psutil.Process]:
        """Processes carrying this configuration's marker: its supervisord's programs and their
        children, which are orphans once that supervisord is dead."""
        marker = str(self.conf_path)
        own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        found = []
        for process in psutil.process_iter():
            if process.pid in own:
                continue
            try:
                if process.environ().get(MARKER_ENV) == marker:
                    found.append(process)
            except psutil.Error:  # gone, a zombie, or someone else's (AccessDenied)
                continue
        return found

    def kill_orphans(self, *, grace: float = 10.0) -> list[int]:
        orphans = self.orphans()
        _terminate(orphans, grace=grace)
        return [p.pid for p in orphans]

    # ------------------------------------------------------------------ programs
    def programs_info(self) -> dict[str, ProgramInfo]:
        infos = cast(list[dict[str, Any]], self._call("supervisor.getAllProcessInfo"))
        restarts = self.restarts()
        return {info["name"]: _program_info(info, restarts.get(info["name"], 0)) for info in infos}

    def states(self) -> dict[str, str]:
        """Each program's state name (RUNNING, BACKOFF, FATAL, ...), without counting restarts."""
        infos = cast(list[dict[str, Any]], self._call("supervisor.getAllProcessInfo"))
        return {info["name"]: str(info["statename"]) for info in infos}

    def info(self, name: str) -> ProgramInfo:
        info = cast(dict[str, Any], self._call("supervisor.getProcessInfo", name))
        return _program_info(info, self.restarts().get(name, 0))

    def start_programs(self, names: Iterable[str]) -> list[str]:
        """Start the named programs that are not already being taken care of; say which.

        Does not wait for them: a program is RUNNING after ``startsecs``, and whether it
        works is for its health check to say.
        """
        infos = {
            i["name"]: i
            for i in cast(list[dict[str, Any]], self._call("supervisor.getAllProcessInfo"))
        }
        started = []
        for name in names:
            if name not in infos:
                raise SupervisorError(f"no program {name!r} in {self.conf_path}")
            if infos[name]["statename"] in ACTIVE_STATES:
                continue
            try:
                self._call("supervisor.startProcess", name, False)
            except xmlrpc.client.Fault as fault:
                if "ALREADY_STARTED" not in fault.faultString:
                    raise
            started.append(name)
        return started

    def stop_program(self, name: str) -> None:
        with contextlib.suppress(xmlrpc.client.Fault):  # NOT_RUNNING: stopped already
            self._call("supervisor.stopProcess", name, True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the program's whole process group (as a crash would); return its pid.

        supervisord makes each program the leader of its own process group, so the group also
        holds the program's children (Tansu under the broker runner).
        """
        pid = self.info(name).pid
        if pid is None:
            raise SupervisorError(f"{name} is not running")
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass  # it died on its own meanwhile: the same outcome
        return pid

    def wait_running(
        self, name: str, *, new_pid_than: int | None = None, timeout: float = 60.0
    ) -> int:
        """Wait until the program is RUNNING (with another pid than ``new_pid_than``); its pid."""
        deadline = time.monotonic() + timeout
        info = self.info(name)
        while True:
            if info.state == "RUNNING" and info.pid is not None and info.pid != new_pid_than:
                return info.pid
            if info.state == "FATAL":
                raise SupervisorError(
                    f"{name} is FATAL (supervisord gave up after it failed to start several"
                    f" times in a row); see {self.program_log(name)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name} not RUNNING with a new pid after {timeout:.0f}s (state {info.state},"
                    f" pid {info.pid}); see {self.program_log(name)}"
                )
            time.sleep(0.1)
            info = self.info(name)

    def restarts(self) -> dict[str, int]:
        """Unexpected exits per program since :attr:`since`, from supervisord's log files."""
        counts: dict[str, int] = {}
        for line in self._log_lines():
            match = _EXIT_LINE.match(line)
            if match and (self.since is None or match["ts"] >= self.since):
                counts[match["name"]] = counts.get(match["name"], 0) + 1
        return counts

    def rss_bytes(self, name: str) -> int:
        """Resident memory of the program's process and all its descendants, in bytes."""
        pid = self.info(name).pid
        if pid is None:
            return 0
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    # ------------------------------------------------------------------ internals
    def _log_lines(self) -> Iterator[str]:
        files = [self.logfile, *(Path(f"{self.logfile}.{i}") for i in range(1, 100))]
        for path in files:
            try:
                with path.open(errors="replace") as lines:
                    for line in lines:
                        if "exited: " in line:
                            yield line.rstrip("\n")
            except FileNotFoundError:
                if path != self.logfile:
                    return  # rotated files are numbered without gaps

    def _call(self, method: str, *args: object, timeout: float = 10.0) -> Any:
        """One XML-RPC call on a fresh connection (the daemon may have been restarted since)."""
        if self.control_port is not None:
            url = f"http://devstack:{self.password}@127.0.0.1:{self.control_port}/RPC2"
            transport: xmlrpc.client.Transport = _HttpTransport(timeout)
        else:
            url = "http://localhost/RPC2"
            transport = _UnixTransport(self.socket_path, timeout)
        proxy = xmlrpc.client.ServerProxy(url, transport=transport, allow_none=True)
        try:
            target: Any = proxy
            for part in method.split("."):
                target = getattr(target, part)
            return target(*args)
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            raise SupervisorError(
                f"supervisord does not answer at {self.server_url}: {exc}"
            ) from exc
        finally:
            transport.close()


def _program_info(info: Mapping[str, Any], restarts: int) -> ProgramInfo:
    running = info["statename"] == "RUNNING"
    pid = int(info["pid"]) or None
    uptime = float(info["now"] - info["start"]) if running and info["start"] else None
    return ProgramInfo(state=str(info["statename"]), pid=pid, uptime_s=uptime, restarts=restarts)


def _terminate(processes: Sequence[psutil.Process], *, grace: float) -> None:
    """SIGTERM each process's group (or the process), then SIGKILL what is left after grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(process.pid) == process.pid:
                    os.killpg(process.pid, sig)
                else:
                    os.kill(process.pid, sig)
        if _wait_gone([p.pid for p in processes], grace if sig == signal.SIGTERM else 5.0):
            return


def _wait_gone(pids: Iterable[int], timeout: float) -> bool:
    """Wait until none of the pids is alive; a zombie (dead, not yet reaped) counts as gone."""
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending:
        for pid in list(pending):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    pending.discard(pid)
            except psutil.NoSuchProcess:
                pending.discard(pid)
        if not pending:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _value(text: str) -> str:
    """A value as supervisord reads it back: ``%`` escaped, nothing configparser would cut."""
    if "\n" in text or "\r" in text or _INLINE_COMMENT.search(text):
        raise ValueError(f"cannot be written to supervisord.conf: {text!r}")
    return text.replace("%", "%%")


def _environment(env: Mapping[str, str]) -> str:
    """``KEY="value",...`` as supervisor's own (non-POSIX shlex) parser reads it back."""
    pairs = []
    for key, value in sorted(env.items()):
        if not _ENV_KEY.match(key):
            raise ValueError(f"not an environment variable name supervisord accepts: {key!r}")
        # The parser keeps quotes in the token and strips quote characters at both ends, with
        # no escapes: a value may contain one kind of quote, and must not start or end with one.
        quote = '"' if '"' not in value else "'"
        edges = (value[:1], value[-1:])
        if quote in value or any(edge in ("'", '"') for edge in edges):
            raise ValueError(f"{key}: value cannot be written to supervisord.conf: {value!r}")
        pairs.append(f"{key}={quote}{_value(value)}{quote}")
    return ",".join(pairs)


class _HttpTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        # Cached like the base class does, so that close() closes it.
        if self._connection[1] is not None and self._connection[0] == host:
            return self._connection[1]
        connection = _UnixConnection(self._path, self._timeout)
        self._connection = host, connection
        return connection


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def quote_command(argv: Sequence[str]) -> str:
    """A command line for ``command=`` (supervisord splits it with POSIX shlex)."""
    return shlex.join(argv)
