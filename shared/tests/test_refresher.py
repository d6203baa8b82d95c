"""The background refresher behind the query-fed gauges."""

from __future__ import annotations

import asyncio

import pytest

from shared.refresher import Refresher

pytestmark = pytest.mark.unit


async def test_it_refreshes_keeps_going_after_failures_and_timeouts_and_stops() -> None:
    calls: list[str] = []

    async def refresh() -> None:
        calls.append("call")
        if len(calls) == 2:
            raise ConnectionError("the database is down")
        if len(calls) == 3:
            await asyncio.sleep(10)  # over the timeout: this round is given up

    refresher = Refresher(refresh, name="test figure", refresh_s=0.01, timeout_s=0.05)
    await refresher.start()
    await refresher.start()  # a second start is the same task
    deadline = asyncio.get_running_loop().time() + 5
    while len(calls) < 5 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert refresher.running and len(calls) >= 5
    await refresher.stop()
    assert not refresher.running
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen, "nothing runs after stop"
