"""What the user asks, without the sentences that only tell us who they are.

Customers often open with their e-mail, phone or card number ("My email is x@y.com. How many
days do I have to return a jacket?"). Those clauses are not the question: given to the model
they dilute what it matches against the documents (the offline model refused 10 of 11 such
questions in `make eval`, kind pii_in_question), and given to a hosted model they send personal
data out for nothing. A clause is dropped when it carries personal data *and* neither asks nor
requests anything, as long as something else is left; every other clause stays as written, so
a request that names its target ("reset the password of sam@example.com") keeps it.
"""

from __future__ import annotations

import re

from shared.guardrails.pii import PIIRedactor

__all__ = ["focus_question"]

#: Clause ends: a sentence end, a colon or semicolon, or a comma that opens a question
#: ("My IBAN is NL91 …, when will my refund show up?").
_CLAUSE_END = re.compile(
    r"(?<=[.!?:;])\s+"
    r"|,\s+(?=(?:when|what|how|why|where|which|who|can|could|do|does|did|is|are|will|would)\b)",
    re.IGNORECASE,
)
#: A clause that asks or requests something is part of the question, whatever else it holds.
_ASKS = re.compile(
    r"\?|^(?:when|what|how|why|where|which|who|can|could|do|does|did|is|are|will|would|should)\b"
    r"|\b(?:please|want|need|would like|help|refund|reset|open|escalate|cancel|change|update"
    r"|send|check|track|tell|explain|move|transfer|close|delete)\b",
    re.IGNORECASE,
)


def focus_question(message: str, redactor: PIIRedactor) -> str:
    """``message`` without its clauses that only disclose personal data (see module doc)."""
    clauses = [c for c in _CLAUSE_END.split(message.strip()) if c.strip()]
    if len(clauses) < 2:
        return message
    kept = [c for c in clauses if _ASKS.search(c) or not redactor.find(c)]
    if not kept:
        return message
    return " ".join(c.strip().rstrip(",") for c in kept)
