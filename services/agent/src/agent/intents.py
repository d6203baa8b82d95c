"""Recognising requests for action (refund, password reset, ticket, escalation) and
lookups of live data (order, ticket, account status) by rules.

Only requests are actions: "how long do refunds take?" is a question for the knowledge base,
"please refund order HP-10023" is a request. A request missing what it needs (a refund without
an order number) is answered with what is missing, not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.contracts import RiskLevel

__all__ = ["Intent", "Lookup", "amount_in", "detect_intent", "detect_lookup", "is_action_request"]

_ORDER = re.compile(r"\b((?:HP|TW|ORD)-?\d{3,})\b", re.IGNORECASE)
#: An account named as the target of a password reset ("the password of sam.customer",
#: "sam.customer's password"): the reset then targets that account, and the tool's ownership
#: check decides (a customer may not; staff may, within their tenant). Without it, the
#: reset would silently target the requester instead of the account they named.
_NAMED_ACCOUNT = re.compile(
    r"(?:password|account)\s+(?:of|for)\s+(?:(?:the\s+)?(?:user|customer|account)\s+)?"
    r"(?P<a>[a-z0-9][a-z0-9._@-]{1,127})"
    r"|(?P<b>[a-z0-9][a-z0-9._@-]{1,127})'s\s+(?:password|account)",
    re.IGNORECASE,
)
_NOT_AN_ACCOUNT = frozenset(
    {"my", "me", "mine", "the", "your", "his", "her", "our", "their", "this", "that", "it"}
    | {"a", "an", "user", "customer", "account"}
)
#: A number as people write money: "2,400", "2.400,50", "1,234.56", "64.50", "25".
_NUMBER = (
    r"(?<![\d.,])(?:\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?(?!\d)"
    r"|\d{1,7}(?:[.,]\d{1,2})?(?!\d))"
)
_AMOUNT = re.compile(
    rf"(?:(?P<sym>[€$£])\s?(?P<a1>{_NUMBER}))"
    rf"|(?:(?P<a2>{_NUMBER})\s?(?P<cur>eur|euros?|€|usd|dollars?|\$|gbp|£))",
    re.IGNORECASE,
)
_CURRENCY = {
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "£": "GBP",
    "gbp": "GBP",
}
# Questions about a procedure ("how do I reset my password?") are for the knowledge base; a
# request is a sentence that asks for the action, or a statement of the problem alone.
_WH_START = re.compile(r"^\s*(how|what|when|why|where|which|who|whom|whose)\b", re.IGNORECASE)
_YES_NO_START = re.compile(
    r"^\s*(is|are|am|was|were|does|do|did|will|would|can|could|should|shall|may|has|have)\b",
    re.IGNORECASE,
)
_REQUEST_CUE = re.compile(
    r"\b(please|pls|i want|i'd like|i would like|i need you to|can you|could you|would you|"
    r"kindly|go ahead|give me|send me)\b"
    r"|^\s*(refund|reset|escalate|open|create|file|raise|issue|process|cancel|unlock)\b",
    re.IGNORECASE,
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def _asks_for_action(message: str) -> bool:
    """Some sentence asks for something to be done, or nothing in the message is a question.

    "Please refund order HP-1" and "I was charged twice for HP-1." are requests; "When will I
    see the money back?" and "I forgot my password. How do I reset it?" are questions, and so
    is "How many checks do I need before a password reset?" even though it names the action.
    """
    sentences = [s.strip() for s in _SENTENCES.split(message) if s.strip()]
    asks_question = False
    for sentence in sentences:
        wh = bool(_WH_START.match(sentence))
        question = wh or sentence.endswith("?") or bool(_YES_NO_START.match(sentence))
        if _REQUEST_CUE.search(sentence) and not wh:
            return True
        asks_question = asks_question or question
    return not asks_question


# First match wins: an explicit "escalate" outranks the refund it may be about.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "escalate",
        re.compile(
            r"\bescalat\w*\b|\b(speak|talk)\s+to\s+(a|an|your|the)\s+(manager|supervisor)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "reset_password",
        re.compile(
            r"\b(reset|forgot|forgotten|recover|unlock|change)\b[^.?!]{0,40}\bpassword\b"
            r"|\bpassword reset\b|\blocked out\b",
            re.IGNORECASE,
        ),
    ),
    # A chargeback is the customer's bank disputing a payment: escalated, never refunded twice.
    ("issue_refund", re.compile(r"\b(refund|money back|reimburse\w*)\b", re.IGNORECASE)),
    (
        "create_ticket",
        re.compile(
            r"\b(open|create|file|raise|log|submit)\b[^.?!]{0,30}"
            r"\b(ticket|case|complaint|fault|incident)\b"
            r"|\breport (a|an|the)?\s*(problem|issue|fault|defect|outage)\b",
            re.IGNORECASE,
        ),
    ),
]

_RISK = {
    "issue_refund": RiskLevel.WRITE,
    "create_ticket": RiskLevel.WRITE,
    "escalate": RiskLevel.WRITE,
    "reset_password": RiskLevel.CRITICAL,
}


@dataclass(frozen=True)
class Intent:
    tool: str
    arguments: dict[str, Any]
    risk: RiskLevel
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def detect_intent(message: str, *, user_id: str) -> Intent | None:
    tool = next((name for name, rule in _RULES if rule.search(message)), None)
    if tool is None or not _asks_for_action(message):
        return None
    args: dict[str, Any] = {}
    missing: list[str] = []
    summary = message.strip()[:300]
    if tool == "issue_refund":
        order = _ORDER.search(message)
        amount = amount_in(message)
        if order:
            args["order_id"] = order.group(1).upper()
        else:
            missing.append("order_id")
        if amount:
            args["amount"], args["currency"] = amount
        else:
            missing.append("amount")
        args["reason"] = summary
    elif tool == "reset_password":
        args["user_id"] = _named_account(message) or user_id
        args["reason"] = summary
    elif tool == "create_ticket":
        order = _ORDER.search(message)
        if order:
            args["order_id"] = order.group(1).upper()
        args["subject"] = summary[:120]
        args["description"] = summary
    else:
        args["reason"] = summary
    return Intent(tool, args, _RISK[tool], tuple(missing))


def _named_account(message: str) -> str | None:
    for match in _NAMED_ACCOUNT.finditer(message):
        name = (match.group("a") or match.group("b")).rstrip(".,;:!?")
        if name.lower() not in _NOT_AN_ACCOUNT:
            return name
    return None


def amount_in(message: str) -> tuple[str, str] | None:
    match = _AMOUNT.search(message)
    if not match:
        return None
    raw = match.group("a1") or match.group("a2")
    symbol = (match.group("sym") or match.group("cur") or "").lower()
    try:
        value = Decimal(_plain_number(raw))
    except InvalidOperation:
        return None
    return f"{value:.2f}", _CURRENCY.get(symbol, "EUR")


def _plain_number(raw: str) -> str:
    """ "2,400" -> "2400", "2.400,50" -> "2400.50", "64,50" -> "64.50".

    The last separator is the decimal one when one or two digits follow it; every other
    separator groups thousands (a refund of "2,400 EUR" is two thousand four hundred).
    """
    head, sep, tail = max(raw.rpartition(","), raw.rpartition("."), key=lambda p: len(p[0]))
    if sep and len(tail) <= 2:
        return head.replace(",", "").replace(".", "") + "." + tail
    return raw.replace(",", "").replace(".", "")


def is_action_request(message: str) -> bool:
    """Whether the user's own words ask for some write action (any tool)."""
    return detect_intent(message, user_id="-") is not None


@dataclass(frozen=True)
class Lookup:
    """A read tool the question needs: live data the documents cannot hold."""

    tool: str
    arguments: dict[str, Any]


_STATUS_CUE = re.compile(
    r"\b(where|status|track\w*|shipped|dispatched|delivered|arriv\w*|late|progress)\b",
    re.IGNORECASE,
)
_TICKET = re.compile(r"\b(T-[0-9A-Fa-f]{4,12}|T-\d{3,8})\b")
_ACCOUNT = re.compile(
    r"\b(?:look\s?up|check|status of|tier of|find)\b[^.?!]{0,25}\baccount\b"
    r"(?:\s+(?:of|for))?\s+(?P<user>[A-Za-z0-9][A-Za-z0-9._@-]{1,127})",
    re.IGNORECASE,
)


def detect_lookup(message: str) -> Lookup | None:
    ticket = _TICKET.search(message)
    if ticket and _STATUS_CUE.search(message):
        return Lookup("ticket_status", {"ticket_id": ticket.group(1)})
    order = _ORDER.search(message)
    if order and _STATUS_CUE.search(message) and detect_intent(message, user_id="-") is None:
        return Lookup("order_status", {"order_id": order.group(1).upper()})
    account = _ACCOUNT.search(message)
    if account:
        return Lookup("account_lookup", {"user_id": account.group("user").rstrip(".,")})
    return None
