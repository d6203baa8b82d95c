"""The gateway's HTTP API against its own OpenAPI document (schemathesis), on the real broker
and database.

Every operation gets generated requests, valid and invalid, bounded per operation, with a
customer's token: no answer may be a 500, and every status, content type (the SSE stream's
``text/event-stream``, ``/metrics``' Prometheus text), header and body must be the one the
document declares. A throw-away tenant, topics of the test's own, nothing downstream: the
requests it accepts simply time out later.
"""

from __future__ import annotations

import re
import uuid

import pytest

from devstack.ports import free_port
from gateway.app import build_service
from gateway.settings import GatewaySettings
from shared.auth import TokenService
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from shared.testing import schemathesis_run, serve_in_thread

pytestmark = pytest.mark.integration


def test_every_operation_conforms_and_never_answers_500(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    tenant = f"fuzz{uuid.uuid4().hex[:8]}"
    token = TokenService(AuthSettings()).mint(
        user_id="fuzz.customer", tenant_id=tenant, roles=["customer"], level="none", ttl_s=3600
    )
    # ?wait= is capped well below its documented 60 s: no consumer answers here, and a run
    # of generated requests must not wait a minute each.
    settings = GatewaySettings(
        kafka=kafka_settings, database=database_settings, max_wait_s=0.2, sse_max_s=0.5
    )
    with serve_in_thread(build_service(settings).http_app(), free_port()) as url:
        run = schemathesis_run(url, token=token, max_examples=40)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) >= 100, run.stdout[-3000:]
