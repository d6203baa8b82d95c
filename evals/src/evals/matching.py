"""How an answer is matched against the dataset's strings and an action's arguments.

Facts are matched case-insensitively, ignoring Markdown emphasis, dash variants and runs of
whitespace, so "within **14 days**" states "14 days". A number is atomic: "90 EUR" is not
found in "12.90 EUR", nor "5 years" in "15 years", while a fact ending in a word may be a
prefix ("5-10 business day" is found in "5-10 business days"). A number used as an adjective
states the plural: "your 5-year warranty" states "5 years", "a 14-day window" "14 days".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

__all__ = ["argument_mismatches", "contains", "found_in", "normalise"]

_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_EMPHASIS = re.compile(r"[*`_]{1,3}(?=\S)|(?<=\S)[*`_]{1,3}")
_SPACE = re.compile(r"\s+")
# Before a number: no digit, and no "12." or "1," that would make it part of a larger one.
_NUMBER_START = r"(?<!\d)(?<!\d[.,])"
_NUMBER_END = r"(?!\d)(?![.,]\d)"
# "5-year warranty" -> "5 years warranty": the compound adjective says what the plural says.
_UNIT_ADJECTIVE = re.compile(
    r"(?<![\d.,-])(\d+)-(minute|hour|day|week|month|year)\b(?!-)", re.IGNORECASE
)


def normalise(text: str) -> str:
    text = _EMPHASIS.sub("", text.translate(_DASHES))
    text = _UNIT_ADJECTIVE.sub(lambda m: f"{m[1]} {m[2]}{'' if m[1] == '1' else 's'}", text)
    return _SPACE.sub(" ", text).strip().casefold()


def contains(text: str, fact: str) -> bool:
    """Whether ``text`` states ``fact`` (both normalised; numbers whole)."""
    wanted = normalise(fact)
    if not wanted:
        return False
    pattern = re.escape(wanted)
    if wanted[0].isdigit():
        pattern = _NUMBER_START + pattern
    if wanted[-1].isdigit():
        pattern += _NUMBER_END
    return re.search(pattern, normalise(text)) is not None


def found_in(text: str, facts: Iterable[str]) -> tuple[list[str], list[str]]:
    """The facts ``text`` states and the ones it does not, in the given order."""
    found: list[str] = []
    missing: list[str] = []
    for fact in facts:
        (found if contains(text, fact) else missing).append(fact)
    return found, missing


def argument_mismatches(expected: Mapping[str, object], actual: Mapping[str, object]) -> list[str]:
    """Each expected argument the action lacks or holds another value for.

    Numbers compare as numbers ("80" == 80.00), text case-insensitively ("hp-10023" ==
    "HP-10023"); arguments the dataset does not name are not compared.
    """
    problems: list[str] = []
    for name, want in expected.items():
        if name not in actual or actual[name] is None:
            problems.append(f"argument {name} missing (expected {want})")
            continue
        got = actual[name]
        if not _same(want, got):
            problems.append(f"argument {name}: expected {want}, got {got}")
    return problems


def _same(want: object, got: object) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want == got
    want_number, got_number = _number(want), _number(got)
    if want_number is not None and got_number is not None:
        return want_number == got_number
    return str(want).strip().casefold() == str(got).strip().casefold()


def _number(value: object) -> Decimal | None:
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None
