"""Requests for action versus questions about them: only the user's request becomes a draft."""

from __future__ import annotations

import pytest

from agent.intents import amount_in, detect_intent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("message", "tool"),
    [
        ("Please refund my order HP-10023 of 80 EUR, the stove arrived broken.", "issue_refund"),
        ("Refund my Ridgeline tent order HP-10023, 80 EUR.", "issue_refund"),
        ("Can you refund order HP-10023, 80 EUR?", "issue_refund"),
        ("I was charged twice for order HP-10023, I want my money back: 45 EUR.", "issue_refund"),
        ("I'm locked out of my account.", "reset_password"),
        ("Could you reset my password?", "reset_password"),
        ("I want to speak to a manager.", "escalate"),
        # The explicit verb wins over the topic: a chargeback is escalated, not refunded.
        ("I got a chargeback notice for order HP-33301, please escalate it.", "escalate"),
        ("My internet has been down since this morning, please open a fault.", "create_ticket"),
    ],
)
def test_requests_become_the_tool_they_ask_for(message: str, tool: str) -> None:
    intent = detect_intent(message, user_id="casey")
    assert intent is not None and intent.tool == tool


@pytest.mark.parametrize(
    "message",
    [
        "How long do refunds take?",
        "Do you refund shipping costs?",
        "I returned my backpack last week. When will I see the money back on my card?",
        "I forgot my password for the app. How do I reset it?",
        "How many verification items do I need for a phone caller asking for a password reset?",
        "What is the escalation path for a P1 outage?",
    ],
)
def test_questions_about_an_action_are_not_requests(message: str) -> None:
    assert detect_intent(message, user_id="casey") is None


def test_a_request_without_what_it_needs_names_what_is_missing() -> None:
    intent = detect_intent("Please refund my tent, it leaks.", user_id="casey")
    assert intent is not None and intent.missing == ("order_id", "amount")


@pytest.mark.parametrize(
    ("message", "target"),
    [
        ("Could you reset my password?", "casey"),
        ("Please reset the password of sam.customer, I am helping him.", "sam.customer"),
        ("Please reset the password for user tara.customer", "tara.customer"),
        ("I'm locked out of my account, please reset my password.", "casey"),
    ],
)
def test_a_reset_targets_the_account_the_user_names(message: str, target: str) -> None:
    """The named account, not silently the requester's; the tool's check then decides."""
    intent = detect_intent(message, user_id="casey")
    assert intent is not None and intent.tool == "reset_password"
    assert intent.arguments["user_id"] == target


@pytest.mark.parametrize(
    ("message", "amount"),
    [
        ("Refund 2,400 EUR on order HP-10031.", ("2400.00", "EUR")),
        ("Refund 2.400,50 € please.", ("2400.50", "EUR")),
        ("Refund $1,234.56 on it.", ("1234.56", "USD")),
        ("Refund 64,50 EUR.", ("64.50", "EUR")),
        ("Refund 64.50 EUR.", ("64.50", "EUR")),
        ("Refund £20 on my order.", ("20.00", "GBP")),
        ("Refund my order HP-10031 of 2460 EUR.", ("2460.00", "EUR")),
        # Too many digits to be an amount: no part of it is taken for one.
        ("Refund 12345678 EUR.", None),
    ],
)
def test_amounts_are_read_as_people_write_them(
    message: str, amount: tuple[str, str] | None
) -> None:
    # A thousands separator once turned a 2,400 EUR refund into a 400 EUR one (make eval, act-07).
    assert amount_in(message) == amount
