"""Redis for the local stack: the server at REDIS_URL when it answers, else one of our own.

As with PostgreSQL (:mod:`devstack.postgres`), a server that already runs is used as it is,
and only when none answers does the stack start the machine's ``redis-server`` on a free port,
as a supervised program (restarted if it dies). Redis holds shared caches only, so the private
one keeps nothing on disk.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_URL", "answers", "purge_namespace", "server_command"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def answers(url: str, *, timeout: float = 1.0) -> bool:
    """True when a Redis at ``url`` answers PING (after AUTH when the URL carries a password).

    Four RESP commands on a socket: not worth a client library the stack would carry for
    nothing else.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return False  # rediss (TLS) is for deployed Redis; the local stack does not probe it
    commands: list[list[str]] = []
    if parts.password:
        user = unquote(parts.username or "default")
        commands.append(["AUTH", user, unquote(parts.password)])
    commands.append(["PING"])
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout
        ) as sock:
            for command in commands:
                sock.sendall(_resp(command))
                reply = sock.recv(64)
                if not reply.startswith(b"+"):
                    return False
            return True
    except OSError:
        return False


def purge_namespace(url: str, namespace: str) -> int:
    """Delete every key under ``namespace:`` (a throw-away stack's caches); the number deleted.

    Best effort: a Redis that has gone away keeps keys that expire by their TTL anyway.
    """
    import redis as redis_py  # the client library (this module shares its name)

    deleted = 0
    try:
        client = redis_py.Redis.from_url(url, socket_timeout=2.0)
        with client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{namespace}:*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(client.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(client.unlink(*batch))
    except redis_py.RedisError:
        return deleted
    return deleted


def _resp(command: list[str]) -> bytes:
    out = [f"*{len(command)}\r\n".encode()]
    for arg in command:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def server_command(port: int, state_dir: Path) -> list[str]:
    """``redis-server`` on loopback, in the foreground, without persistence."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise FileNotFoundError(
            "no Redis answers at REDIS_URL and redis-server is not installed"
            " (Debian: apt-get install redis-server)"
        )
    folder = state_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
        "--daemonize",
        "no",
    ]
