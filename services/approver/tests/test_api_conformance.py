"""The approvals API against its own OpenAPI document (schemathesis), on a real database.

Every operation gets generated requests, valid and invalid, bounded per operation, with an
L2 token of a throw-away tenant: no answer may be a 500, and every status, content type,
header and body must be the one the document declares. The run that asked for this found a
NUL in a reason and a 25-digit offset answered with 500s.
"""

from __future__ import annotations

import re
import uuid

import pytest

from approver.app import build_service
from approver.settings import ApproverSettings
from devstack.ports import free_port
from shared.auth import TokenService
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from shared.testing import schemathesis_run, serve_in_thread

pytestmark = pytest.mark.integration


def test_every_operation_conforms_and_never_answers_500(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    tenant = f"fuzz{uuid.uuid4().hex[:8]}"
    token = TokenService(AuthSettings()).mint(
        user_id="fuzz.l2", tenant_id=tenant, roles=["support"], level="L2", ttl_s=3600
    )
    settings = ApproverSettings(kafka=kafka_settings, database=database_settings)
    with serve_in_thread(build_service(settings).http_app(), free_port()) as url:
        run = schemathesis_run(url, token=token, max_examples=40)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) >= 100, run.stdout[-3000:]
