"""The eval dataset: bad lines reported by number, the rest kept; the shipped dataset is
well-formed, covers every kind, and states facts its sources really hold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from evals.dataset import KINDS, Case, load_dataset, parse_dataset
from evals.matching import contains
from evals.permissions import AccessOracle
from shared.principal import StaffLevel

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / "evals" / "dataset.jsonl"
KNOWLEDGE_BASE = REPO / "deploy" / "knowledge-base"


def _case(**overrides: object) -> str:
    case: dict[str, object] = {
        "id": "c1",
        "input": "How long is a gift card valid?",
        "principal": {"tenant": "harborpine", "roles": ["customer"], "level": "none"},
        "kind": "answer",
        "expected": ["3 years"],
        "expected_sources": ["hp-gift-cards"],
        "must_cite": True,
        "expected_action": None,
        "note": "",
    }
    case.update(overrides)
    return json.dumps({k: v for k, v in case.items() if v is not ...})


def test_bad_lines_are_reported_with_their_number_and_the_rest_is_kept() -> None:
    lines = [
        _case(id="good-1"),
        "{not json",
        "",
        _case(id="no-kind", kind=...),
        _case(id="good-2"),
        _case(id="bad-kind", kind="chit-chat"),
        _case(id="good-1"),
        "[1, 2]",
    ]
    cases, errors = parse_dataset(lines)
    assert [c.id for c in cases] == ["good-1", "good-2"]
    by_line = {e.line: e.message for e in errors}
    assert sorted(by_line) == [2, 4, 6, 7, 8]
    assert by_line[2].startswith("not valid JSON")
    assert "missing field 'kind'" in by_line[4]
    assert by_line[6].startswith("kind:")
    assert by_line[7] == "duplicate id 'good-1' (first on line 1)"
    assert str(errors[0]) == f"line 2: {by_line[2]}"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "action", "expected_action": None}, "needs expected_action"),
        (
            {"kind": "answer", "expected_action": {"tool": "issue_refund", "arguments": {}}},
            "expected_action must be null",
        ),
        ({"must_cite": True, "expected_sources": []}, "must_cite needs expected_sources"),
        ({"kind": "pii_in_question", "must_not_say": []}, "personal data in must_not_say"),
        ({"expected_action": ...}, "missing field 'expected_action'"),
        ({"principal": {"tenant": "harborpine", "roles": [], "level": "none"}}, "principal.roles"),
        ({"principal": {"tenant": "t", "roles": ["x"], "level": "boss"}}, "principal.level"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_inconsistent_cases_are_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    cases, errors = parse_dataset([_case(**overrides)])
    assert not cases
    assert len(errors) == 1
    assert errors[0].line == 1
    assert message in errors[0].message


def test_load_dataset_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(_case() + "\n\n" + "oops\n", encoding="utf-8")
    dataset = load_dataset(path)
    assert [c.id for c in dataset.cases] == ["c1"]
    assert [e.line for e in dataset.errors] == [3]


# ------------------------------------------------------------------ the shipped dataset
@pytest.fixture(scope="module")
def shipped() -> list[Case]:
    dataset = load_dataset(DATASET)
    assert dataset.errors == []
    return list(dataset.cases)


def test_the_shipped_dataset_covers_every_kind_with_its_own_pass_rate(shipped: list[Case]) -> None:
    counts = Counter(c.kind for c in shipped)
    assert len(shipped) >= 120
    assert set(counts) == set(KINDS)
    assert min(counts.values()) >= 10, counts


def test_the_shipped_dataset_holds_the_refund_ownership_and_total_rules(
    shipped: list[Case],
) -> None:
    refused = {c.id: c for c in shipped if c.kind == "action_refused"}
    reasons = {
        fact for c in refused.values() for fact in c.expected if fact != "could not complete"
    }
    assert {"not found", "exceeds", "paid in EUR", "own account"} <= reasons
    assert all("could not complete" in c.expected for c in refused.values())


def _documents() -> dict[str, str]:
    import frontmatter

    return {
        str(frontmatter.load(str(p)).metadata["doc_id"]): p.read_text(encoding="utf-8")
        for p in sorted(KNOWLEDGE_BASE.rglob("*.md"))
        if p.name != "README.md"
    }


def test_every_expected_fact_is_stated_in_one_of_its_sources(shipped: list[Case]) -> None:
    documents = _documents()
    oracle = AccessOracle.from_knowledge_base(KNOWLEDGE_BASE, max_bytes=10**7)
    for case in shipped:
        assert set(case.expected_sources) <= set(documents), case.id
        if case.kind not in ("answer", "pii_in_question"):
            continue
        principal = case.principal.principal("u")
        for source in case.expected_sources:
            tenant = case.principal.tenant
            assert not oracle.forbidden(principal, tenant=tenant, doc_id=source), (
                f"{case.id}: {source} is not readable by its principal"
            )
        for fact in case.expected:
            assert any(contains(documents[s], fact) for s in case.expected_sources), (
                f"{case.id}: {fact!r} is in none of {case.expected_sources}"
            )


def test_permission_denials_name_a_forbidden_document_and_secrets_only_it_holds(
    shipped: list[Case],
) -> None:
    documents = _documents()
    oracle = AccessOracle.from_knowledge_base(KNOWLEDGE_BASE, max_bytes=10**7)
    tenants = {d: ("harborpine" if d.startswith("hp-") else "tidewell") for d in documents}
    for case in (c for c in shipped if c.kind == "permission_denial"):
        principal = case.principal.principal("u")
        for source in case.expected_sources:
            assert oracle.forbidden(principal, tenant=tenants[source], doc_id=source), case.id
        readable = [
            d for d in documents if not oracle.forbidden(principal, tenant=tenants[d], doc_id=d)
        ]
        for secret in case.must_not_say:
            assert any(contains(documents[s], secret) for s in case.expected_sources), case.id
            assert not [d for d in readable if contains(documents[d], secret)], (
                f"{case.id}: {secret!r} is also in a document {principal.user_id} may read"
            )


def test_ownership_cases_name_their_user(shipped: list[Case]) -> None:
    for case in shipped:
        if case.kind in ("action", "action_refused") and case.principal.level is StaffLevel.NONE:
            assert case.principal.user_id, f"{case.id}: a customer's action needs its user"
