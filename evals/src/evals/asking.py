"""Asking the platform: every case over HTTP as its principal, in parallel, bounded.

Each case is one ``POST /v1/chat`` (waiting up to ``wait_s`` for the saga to settle), then
``GET /v1/requests/{id}`` until it settles or the case's time is up. An HTTP error, a body
that is not JSON or a timeout ends that case with the reason; the other cases go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.status import SETTLED
from shared.auth import TokenService

from .dataset import Case

__all__ = ["Asker", "Reply", "user_for"]


@dataclass(frozen=True)
class Reply:
    """What the gateway said about one case, or why it said nothing usable."""

    case_id: str
    request_id: str | None = None
    trace_id: str | None = None
    status: str | None = None
    result: dict[str, Any] | None = None
    latency_ms: float | None = None
    error: str | None = None


def user_for(case: Case) -> str:
    """The case's user, or one of its own: requests of different cases never share a user
    unless the dataset says so (ownership cases name real accounts)."""
    return case.principal.user_id or f"eval-{case.id}"


class Asker:
    def __init__(
        self,
        base_url: str,
        tokens: TokenService,
        *,
        concurrency: int,
        timeout_s: float,
        wait_s: float = 20.0,
        poll_s: float = 0.2,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._base_url = base_url
        self._tokens = tokens
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._wait_s = min(wait_s, timeout_s)
        self._poll_s = poll_s

    async def ask_all(self, cases: Sequence[Case]) -> list[Reply]:
        """One reply per case, in the cases' order."""
        slots = asyncio.Semaphore(self._concurrency)
        limits = httpx.Limits(max_connections=self._concurrency * 2)
        async with httpx.AsyncClient(
            base_url=self._base_url, timeout=self._timeout_s + 5, limits=limits
        ) as client:

            async def one(case: Case) -> Reply:
                async with slots:
                    return await self._ask(client, case)

            return list(await asyncio.gather(*(one(c) for c in cases)))

    async def _ask(self, client: httpx.AsyncClient, case: Case) -> Reply:
        spec = case.principal
        token = self._tokens.mint(
            user_id=user_for(case), tenant_id=spec.tenant, roles=spec.roles, level=spec.level
        )
        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        seen: dict[str, Any] = {}
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await client.post(
                    "/v1/chat",
                    params={"wait": self._wait_s},
                    json={"message": case.input},
                    headers=headers,
                )
                view = _view(response)
                seen.update(view)
                while view.get("status") not in SETTLED:
                    await asyncio.sleep(self._poll_s)
                    view = _view(
                        await client.get(f"/v1/requests/{view['request_id']}", headers=headers)
                    )
                    seen.update(view)
        except TimeoutError:
            return Reply(
                case.id,
                request_id=seen.get("request_id"),
                trace_id=seen.get("trace_id"),
                status=seen.get("status"),
                error=f"not settled within {self._timeout_s:.0f}s"
                f" (last status: {seen.get('status', 'none')})",
            )
        except (httpx.HTTPError, _BadResponse) as exc:
            return Reply(
                case.id,
                request_id=seen.get("request_id"),
                status=seen.get("status"),
                error=str(exc) if isinstance(exc, _BadResponse) else f"HTTP error: {exc!r}",
            )
        return Reply(
            case.id,
            request_id=view.get("request_id"),
            trace_id=view.get("trace_id"),
            status=view.get("status"),
            result=view.get("result"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )


class _BadResponse(Exception):
    """The gateway answered, but not with a request view."""


def _view(response: httpx.Response) -> dict[str, Any]:
    if response.status_code not in (200, 202):
        raise _BadResponse(f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        body = response.json()
    except ValueError:
        raise _BadResponse(f"HTTP {response.status_code}: body is not JSON") from None
    if not isinstance(body, dict) or "request_id" not in body:
        raise _BadResponse(f"HTTP {response.status_code}: no request_id in the body")
    return body
