"""The approvals API against its own OpenAPI document (schemathesis), on a real database.

Every operation gets generated requests, valid and invalid, bounded per operation, with an
L2 token of a throw-away tenant: no answer may be a 500, and every status, content type,
header and body must be the one the document declares. The run that asked for this found a
NUL in a reason and a 25-digit offset answered with 500s.
"""

from __future__ import annotations

import uuid

import pytest

from approver.app import build_service
from approver.settings import ApproverSettings
from shared.auth import TokenService
from shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from shared.testing import assert_conforms

pytestmark = pytest.mark.integration


def test_every_operation_conforms_and_never_answers_500(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    token = TokenService(AuthSettings()).mint(
        user_id="fuzz.l2", tenant_id=f"fuzz{uuid.uuid4().hex[:8]}", roles=["support"], level="L2"
    )
    settings = ApproverSettings(kafka=kafka_settings, database=database_settings)
    assert_conforms(build_service(settings).http_app(), token=token)
