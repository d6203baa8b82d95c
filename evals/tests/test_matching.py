"""How the eval matches an answer against the dataset's facts and an action's arguments."""

from __future__ import annotations

import pytest

from evals.matching import argument_mismatches, contains, found_in

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("Returns are accepted within **14 days**.", "14 days"),
        ("Delivery takes 5\u201310 business days", "5-10 business day"),
        ("It also keeps your Ridgeline 5-year warranty valid.", "5 years"),
        ("You have a 30-day return window.", "30 days"),
        ("A 1-year guarantee.", "1 year"),
        ("Refund of 1,250.00 EUR", "1,250.00 EUR"),
    ],
)
def test_a_fact_stated_in_other_words_of_the_same_form_is_found(text: str, fact: str) -> None:
    assert contains(text, fact)


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("The order total is 12.90 EUR", "90 EUR"),
        ("Backpacks carry a 15 years warranty", "5 years"),
        ("a 15-year warranty", "5 years"),
        ("within 2-3-year ranges", "3 years"),  # a range is not the plural of its end
        ("", "5 years"),
        ("anything", ""),
    ],
)
def test_a_number_is_atomic_and_nothing_is_found_in_nothing(text: str, fact: str) -> None:
    assert not contains(text, fact)


def test_found_in_keeps_the_dataset_order() -> None:
    found, missing = found_in(
        "2 years and a replacement igniter", ["replacement igniter", "5 years", "2 years"]
    )
    assert found == ["replacement igniter", "2 years"] and missing == ["5 years"]


def test_arguments_compare_numbers_as_numbers_and_text_case_insensitively() -> None:
    assert (
        argument_mismatches(
            {"amount": "80", "order_id": "hp-10023"}, {"amount": 80.0, "order_id": "HP-10023"}
        )
        == []
    )
    assert argument_mismatches({"amount": 80, "currency": "EUR"}, {"amount": 45}) == [
        "argument amount: expected 80, got 45",
        "argument currency missing (expected EUR)",
    ]
