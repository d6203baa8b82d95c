"""The knowledge rules without HTTP: refusals carry a problem code the entry point maps."""

from __future__ import annotations

import pytest

from retriever.http_api import STATUS_OF
from retriever.knowledge import KnowledgeAdmin, KnowledgeError, Problem
from retriever.settings import IngestSettings
from shared.principal import Principal, StaffLevel

pytestmark = pytest.mark.unit


def _no_engine() -> object:
    raise AssertionError("these checks refuse before the index is touched")


def test_every_problem_has_a_client_status_and_only_a_full_index_is_a_5xx() -> None:
    assert set(STATUS_OF) == set(Problem)
    assert {p for p, s in STATUS_OF.items() if s >= 500} == {Problem.INDEX_UNAVAILABLE}
    assert all(400 <= s < 600 for s in STATUS_OF.values())


def test_a_customer_is_not_a_knowledge_admin() -> None:
    admin = KnowledgeAdmin(IngestSettings(), _no_engine)  # type: ignore[arg-type]
    customer = Principal(user_id="c", tenant_id="harborpine", roles=("customer",))
    with pytest.raises(KnowledgeError) as refused:
        admin.authorise(customer)
    assert refused.value.problem is Problem.FORBIDDEN and "roles" in refused.value.message


@pytest.mark.parametrize(
    ("name", "size", "problem"),
    [("a.exe", 10, Problem.UNSUPPORTED_FORMAT), ("a.md", 10**9, Problem.TOO_LARGE)],
)
def test_an_upload_is_refused_before_it_is_read(name: str, size: int, problem: Problem) -> None:
    admin = KnowledgeAdmin(IngestSettings(), _no_engine)  # type: ignore[arg-type]
    with pytest.raises(KnowledgeError) as refused:
        admin.check_upload(name, size)
    assert refused.value.problem is problem


async def test_ingest_refuses_an_unreadable_file_without_touching_the_index() -> None:
    admin = KnowledgeAdmin(IngestSettings(), _no_engine)  # type: ignore[arg-type]
    staff = Principal(
        user_id="a", tenant_id="harborpine", roles=("knowledge_admin",), level=StaffLevel.L2
    )
    with pytest.raises(KnowledgeError) as refused:
        await admin.ingest(staff, "a.md", b"   ", {"min_level": "none"})
    assert refused.value.problem is Problem.UNREADABLE
