"""Pytest plugin shared by every package's tests (loaded with ``-p shared.testing``).

Loading it by import name also makes sure the real ``shared`` package is imported before
pytest walks ``shared/tests``: otherwise pytest's importlib mode would register the repo's
``shared/`` folder as a namespace package under the same name.
"""

from __future__ import annotations

import uuid

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
