"""The cache bench: its question set and draw, and, at small scale through two real stacks,
that caching serves no answer across a permission boundary and does hit."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from evals.bench_cache import DATASET, KNOWLEDGE_BASE, build_questions, main, zipf_sample
from shared.cache import normalise_question


@pytest.mark.unit
def test_two_hundred_distinct_questions_each_its_own_cache_key() -> None:
    questions = build_questions(KNOWLEDGE_BASE, DATASET, 200)
    assert len(questions) == 200
    assert len({normalise_question(q) for q in questions}) == 200


@pytest.mark.unit
def test_the_draw_is_zipf_shaped() -> None:
    ranks = zipf_sample(20_000, 200, 1.1, random.Random(1))
    counts = Counter(ranks)
    # P(1) / P(2) = 2 ** 1.1 = 2.14; the head dominates, the tail is still drawn.
    assert 1.8 < counts[0] / counts[1] < 2.5
    assert counts[0] > 10 * counts[99] > 0


@pytest.mark.e2e
def test_small_bench_serves_nothing_across_a_permission_boundary(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    main(["--requests", "40", "--questions", "8", "--max-seconds", "120", "--json", str(out)])
    figures = json.loads(out.read_text())
    for run in ("off", "on"):
        assert figures[run]["violations"] == []
        assert figures[run]["errors"] == 0
    assert figures["off"]["hit_rate"]["answer"] in (None, 0.0)
    assert figures["on"]["hit_rate"]["answer"] > 0.3
    assert figures["on"]["cost_usd"] < figures["off"]["cost_usd"]
