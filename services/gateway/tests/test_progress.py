"""Waking waiters: a caller waiting for the result sleeps through intermediate steps."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.progress import ProgressHub

pytestmark = pytest.mark.unit


async def test_result_waiters_wake_only_when_the_request_may_have_settled() -> None:
    hub = ProgressHub("postgresql://unused", poll_s=5)
    request_id = uuid.uuid4()
    async with (
        hub.watch(request_id, settled_only=True) as result,
        hub.watch(request_id) as steps,
    ):
        hub.notify(str(request_id))  # what the LISTEN loop does for an intermediate step
        await asyncio.wait_for(steps.changed(5), timeout=0.5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(result.changed(5), timeout=0.2)

        hub.notify(f"{request_id} settled")
        await asyncio.wait_for(result.changed(5), timeout=0.5)


async def test_notices_for_other_requests_or_garbage_wake_nobody() -> None:
    hub = ProgressHub("postgresql://unused", poll_s=5)
    request_id = uuid.uuid4()
    async with hub.watch(request_id) as steps:
        hub.notify(f"{uuid.uuid4()} settled")
        hub.notify("not-a-uuid settled")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(steps.changed(5), timeout=0.2)
