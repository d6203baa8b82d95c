"""PostgreSQL for the local stack: the server at DATABASE_URL, or a throw-away cluster.

When nothing answers at the configured URL, a private cluster is created from the machine's
PostgreSQL binaries (initdb + pg_ctl) in the stack's state folder, on its own port, with trust
authentication on loopback only; ``stop()`` removes it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import conninfo, sql

__all__ = [
    "PostgresHandle",
    "create_database",
    "drop_database",
    "ensure_server",
    "restart_cluster",
    "server_answers",
]


def server_answers(url: str) -> bool:
    try:
        with psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@dataclass
class PostgresHandle:
    url: str
    cluster_dir: Path | None = None

    @property
    def started_by_us(self) -> bool:
        return self.cluster_dir is not None

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        if self.cluster_dir is None:
            return
        self.halt("fast")
        shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def halt(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """Stop the cluster and keep its files (``immediate``: as a crash would, no checkpoint)."""
        if self.cluster_dir is None:
            raise RuntimeError("not a cluster of ours: the server at DATABASE_URL is left alone")
        data = self.cluster_dir / "data"
        if data.exists():
            subprocess.run(
                [
                    *_as_postgres(),
                    str(_bindir() / "pg_ctl"),
                    "-D",
                    str(data),
                    "stop",
                    "-m",
                    mode,
                    "-w",
                ],
                check=False,
                capture_output=True,
            )


def ensure_server(url: str, cluster_dir: Path, port: int) -> PostgresHandle:
    if server_answers(url):
        return PostgresHandle(url)
    return start_cluster(
        cluster_dir, port, dbname=str(conninfo.conninfo_to_dict(url).get("dbname") or "postgres")
    )


def start_cluster(cluster_dir: Path, port: int, *, dbname: str = "postgres") -> PostgresHandle:
    bindir = _bindir()
    if os.geteuid() == 0:
        # The cluster runs as the postgres user, who may not be able to reach the caller's
        # folder (pytest's tmp dirs are 0700 root): use a fresh folder of its own instead.
        cluster_dir = Path(tempfile.mkdtemp(prefix="support-pg-"))
    data = cluster_dir / "data"
    sockets = cluster_dir / "sock"
    shutil.rmtree(sockets, ignore_errors=True)
    sockets.mkdir(parents=True)
    if os.geteuid() == 0:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        user = pwd.getpwnam("postgres")
        for path in (cluster_dir, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    subprocess.run(
        [
            *_as_postgres(),
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    _pg_ctl_start(cluster_dir, port)
    return PostgresHandle(f"postgresql://postgres@127.0.0.1:{port}/{dbname}", cluster_dir)


def restart_cluster(url: str, cluster_dir: Path) -> PostgresHandle | None:
    """Start a throw-away cluster of ours again if it is down (``make up`` after a crash).

    Returns None when it answers already, else the handle of the started cluster. Its files
    are kept while the stack is up, so the data is still there; a cluster whose files are gone
    is created afresh on the same port, possibly in another folder (see :func:`start_cluster`);
    ``up`` reruns the migrations and the demo data anyway.
    """
    if server_answers(url):
        return None
    info = conninfo.conninfo_to_dict(url)
    port = int(info.get("port") or 5432)
    if (cluster_dir / "data" / "PG_VERSION").exists():
        _pg_ctl_start(cluster_dir, port)
        return PostgresHandle(url, cluster_dir)
    shutil.rmtree(cluster_dir, ignore_errors=True)
    return start_cluster(cluster_dir, port, dbname=str(info.get("dbname") or "postgres"))


def _pg_ctl_start(cluster_dir: Path, port: int) -> None:
    data = cluster_dir / "data"
    sockets = cluster_dir / "sock"
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *_as_postgres(),
            str(_bindir() / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(cluster_dir / "postgres.log"),
            "start",
            "-w",
            "-t",
            "30",
        ],
        check=True,
        capture_output=True,
    )


def create_database(url: str) -> None:
    name = str(conninfo.conninfo_to_dict(url).get("dbname") or "postgres")
    with psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str) -> None:
    name = str(conninfo.conninfo_to_dict(url).get("dbname"))
    with psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for found in (shutil.which("initdb"), *candidates):
        if found:
            path = Path(found)
            bindir = path.parent if path.name == "initdb" else path
            if (bindir / "initdb").exists():
                return bindir
    raise RuntimeError("no PostgreSQL server binaries found (install postgresql)")
