"""Pytest plugin shared by every package's tests (loaded with ``-p shared.testing``).

Loading it by import name also makes sure the real ``shared`` package is imported before
pytest walks ``shared/tests``: otherwise pytest's importlib mode would register the repo's
``shared/`` folder as a namespace package under the same name.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from shared.contracts import ChatRequested
from shared.principal import Principal, StaffLevel


@pytest.fixture
def principal() -> Principal:
    return Principal(user_id="u-1", tenant_id="harborpine", roles=("support",), level=StaffLevel.L1)


@pytest.fixture
def chat(principal: Principal) -> ChatRequested:
    return ChatRequested(
        request_id=uuid.uuid4(), tenant_id=principal.tenant_id, principal=principal, message="hi"
    )


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, every: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with a clear message at the deadline.

    Cross-service tests wait for effects this way instead of sleeping a fixed time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {probe!r}")
        await asyncio.sleep(every)
