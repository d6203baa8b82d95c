"""Where cached values live: Redis shared by every replica, or this process's memory.

Both stores hold bytes under string keys with a time to live, plus *tags*: a tag names a set
of keys (the answers that cite one document) so they can be dropped together. The store is
never a dependency the saga waits on: a Redis that is down, slow or refusing answers as a miss
(``get`` → ``None``, ``set`` and ``drop_tag`` do nothing), the failure is counted and logged at
most once per interval by the telemetry's rate-limited handler, and the request goes on
uncached. The same contract tests run against both stores (``shared/tests/test_cache_contract.py``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["CacheStore", "MemoryStore", "RedisStore"]

log = logging.getLogger(__name__)


class CacheStore(Protocol):
    #: ``redis`` or ``memory``: which kind answers (for logs and the bench report).
    kind: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(
        self, key: str, value: bytes, ttl_s: float, *, tags: Iterable[str] = ()
    ) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def drop_tag(self, tag: str) -> int:
        """Delete every key stored under ``tag``; the number of keys deleted."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """A bounded LRU of entries with expiry, for one process (no ``REDIS_URL``, unit tests).

    Tags are kept per entry and resolved by a scan on ``drop_tag``: invalidation is rare (a
    re-ingest), lookups are the hot path.
    """

    kind = "memory"

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes, frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()  # the CLI and worker threads may share a store

    async def get(self, key: str) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, value, _ = found
            if expires <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    async def set(self, key: str, value: bytes, ttl_s: float, *, tags: Iterable[str] = ()) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl_s, value, frozenset(tags))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    async def drop_tag(self, tag: str) -> int:
        with self._lock:
            doomed = [k for k, (_, _, tags) in self._entries.items() if tag in tags]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisStore:
    """Redis through redis-py's asyncio client; every failure is a miss, never an error.

    Tags are Redis sets of keys (``tag:<name>``) that live as long as the longest entry put
    under them. Timeouts are short on purpose: a cache that takes longer than the work it
    saves is worse than none.
    """

    kind = "redis"

    def __init__(self, url: str, *, namespace: str = "platform", timeout_s: float = 0.25) -> None:
        self._ns = namespace
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # Redis down: each call fails fast instead of retrying inside the request.
            retry_on_timeout=False,
        )
        self.errors = 0

    def _k(self, key: str) -> str:
        return f"{self._ns}:{key}"

    def _failed(self, op: str, exc: Exception) -> None:
        self.errors += 1
        # The message template is constant, so the rate-limited log handler folds repeats.
        log.warning("cache store unavailable (%s), treated as a miss: %s", op, type(exc).__name__)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(self._k(key))
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            return None
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl_s: float, *, tags: Iterable[str] = ()) -> None:
        ttl_ms = max(1, int(ttl_s * 1000))
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._k(key), value, px=ttl_ms)
                for tag in tags:
                    pipe.sadd(self._k(f"tag:{tag}"), key)
                    # GT keeps the longest expiry among the tag's entries (Redis >= 7).
                    pipe.pexpire(self._k(f"tag:{tag}"), ttl_ms, gt=True)
                    # A new tag set has no expiry yet, which GT treats as infinite: set one.
                    pipe.pexpire(self._k(f"tag:{tag}"), ttl_ms, nx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("set", exc)

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(self._k(key))
        except (RedisError, OSError) as exc:
            self._failed("delete", exc)

    async def drop_tag(self, tag: str) -> int:
        tag_key = self._k(f"tag:{tag}")
        try:
            members = await self._client.smembers(tag_key)
            keys = [self._k(m.decode() if isinstance(m, bytes) else str(m)) for m in members]
            deleted = int(await self._client.delete(*keys)) if keys else 0
            await self._client.delete(tag_key)
        except (RedisError, OSError) as exc:
            self._failed("drop_tag", exc)
            return 0
        return deleted

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        # Closing a dead connection: nothing left to do.
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
