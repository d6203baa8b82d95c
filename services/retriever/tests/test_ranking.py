"""Fusion functions and query hygiene: pure code."""

from __future__ import annotations

import pytest

from retriever.query import check_query
from retriever.ranking import convex, fuse, mix_rerank, normalise, ranked, rrf
from retriever.settings import RankingSettings

pytestmark = pytest.mark.unit


def test_normalise() -> None:
    assert normalise({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert normalise({"a": 5.0}) == {"a": 1.0}
    z = normalise({"a": 1.0, "b": 3.0}, "zscore")
    assert z == pytest.approx({"a": -1.0, "b": 1.0})
    assert normalise({}) == {}


def test_convex_mixes_normalised_scores_over_the_union() -> None:
    fused = convex(
        {"bm25": {"a": 10.0, "b": 0.0}, "dense": {"b": 0.9, "c": 0.5}}, {"bm25": 0.6, "dense": 0.4}
    )
    # a: 0.6*1 + 0.4*floor(0); b: 0.6*0 + 0.4*1; c: 0.6*floor(0) + 0.4*0
    assert fused == pytest.approx({"a": 0.6, "b": 0.4, "c": 0.0})
    assert ranked(fused) == ["a", "b", "c"]


def test_default_fusion_is_a_sum_of_z_scores_and_rerank_adds_its_own() -> None:
    bm25 = {"a": 3.0, "b": 1.0}
    dense = {"a": 0.2, "b": 0.4}
    fused = fuse(bm25, dense, RankingSettings())
    assert fused == pytest.approx({"a": 0.0, "b": 0.0}), "each stage's z-scores cancel out"
    final = mix_rerank(fused, {"a": 0.9, "b": 0.1}, weight=1.0)
    assert final == pytest.approx({"a": 1.0, "b": -1.0})
    unscored = mix_rerank({"a": 0.0, "b": 0.0, "c": 5.0}, {"a": 0.9, "b": 0.1}, weight=1.0)
    assert unscored["c"] == pytest.approx(4.0), "beyond the rerank depth: the lowest rerank score"
    assert mix_rerank(fused, {}, weight=1.0) == fused


def test_rrf() -> None:
    fused = rrf({"x": ["a", "b"], "y": ["b", "c"]}, k=1)
    assert fused == pytest.approx({"a": 0.5, "b": 1 / 3 + 0.5, "c": 1 / 3})
    assert ranked(fused)[0] == "b"
    assert ranked({"b": 1.0, "a": 1.0}) == ["a", "b"], "ties break by key: deterministic"


@pytest.mark.parametrize(
    ("raw", "reason", "text"),
    [
        ("", "empty_query", ""),
        ("   \t\n ", "empty_query", ""),
        ("\x00\x01\x1b\u200b\x7f", "empty_query", ""),
        ("x" * 2001, "query_too_long", None),
        ("?!… ¿¡", "no_searchable_text", None),
        ("退货政策是什么", "unsupported_script", None),
        ("مرحبا كيف حالك", "unsupported_script", None),
        ("\x00refund\x07 policy\u200b", None, "refund policy"),
        ("ＦＵＬＬ width", None, "FULL width"),
        ("TNF-α in β-cell apoptosis", None, "TNF-α in β-cell apoptosis"),
        ("order 12345", None, "order 12345"),
    ],
)
def test_query_hygiene(raw: str, reason: str | None, text: str | None) -> None:
    checked = check_query(raw, max_chars=2000, min_supported_share=0.5)
    assert checked.rejected == reason
    if text is not None and reason is None:
        assert checked.text == text
