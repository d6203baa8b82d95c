"""The question the model answers: disclosures of personal data left out, requests kept whole."""

from __future__ import annotations

import pytest

from agent.question import focus_question
from shared.guardrails.pii import PIIRedactor

pytestmark = pytest.mark.unit

REDACTOR = PIIRedactor()


@pytest.mark.parametrize(
    ("message", "question"),
    [
        (
            "My email is casey@example.com. How many days do I have to return a jacket?",
            "How many days do I have to return a jacket?",
        ),
        (
            "Call me back on +44 20 7946 0011: how long is a gift card valid?",
            "how long is a gift card valid?",
        ),
        (
            "My IBAN is NL91 ABNA 0417 1643 00, when will my refund show up?",
            "when will my refund show up?",
        ),
        (
            "I paid with card 4111 1111 1111 1111. Why are there two charges on my card?",
            "Why are there two charges on my card?",
        ),
    ],
)
def test_a_clause_that_only_discloses_personal_data_is_left_out(
    message: str, question: str
) -> None:
    assert focus_question(message, REDACTOR) == question


@pytest.mark.parametrize(
    "message",
    [
        # The request names its target: it must reach the intent rules as written.
        "Please reset the password of sam@example.com.",
        # One clause: nothing else would be left.
        "Is casey@example.com the e-mail on my account?",
        # No personal data: untouched.
        "I'm a Trailhead member. Is my return window longer?",
        # A request with personal data in it stays, the question after it too.
        "My number is +31 6 9876 5432 and I want to move it to Tidewell. How long does it take?",
    ],
)
def test_requests_and_plain_questions_are_kept_as_written(message: str) -> None:
    assert focus_question(message, REDACTOR) == message


def test_a_disclosure_after_a_request_is_left_out_and_the_request_kept() -> None:
    message = "Please reset my password. My email is casey@example.com."
    assert focus_question(message, REDACTOR) == "Please reset my password."
