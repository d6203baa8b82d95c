"""The gateway's HTTP API against its own OpenAPI document (schemathesis), on the real broker
and database.

Every operation gets generated requests, valid and invalid, bounded per operation, with a
customer's token: no answer may be a 500, and every status, content type (the SSE stream's
``text/event-stream``, ``/metrics``' Prometheus text), header and body must be the one the
document declares. A throw-away tenant, topics of the test's own, nothing downstream: the
requests it accepts simply time out later.
"""

from __future__ import annotations

import uuid

import pytest

from gateway.app import build_service
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from shared.testing import assert_conforms

pytestmark = pytest.mark.integration


def test_every_operation_conforms_and_never_answers_500(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    token = TokenService(AuthSettings()).mint(
        user_id="fuzz.customer",
        tenant_id=f"fuzz{uuid.uuid4().hex[:8]}",
        roles=["customer"],
        level="none",
    )
    # ?wait= is capped well below its documented 60 s: no consumer answers here, and a run
    # of generated requests must not wait a minute each.
    settings = GatewaySettings(
        kafka=kafka_settings, database=database_settings, max_wait_s=0.2, sse_max_s=0.5
    )
    assert_conforms(build_service(settings).http_app(), token=token)
