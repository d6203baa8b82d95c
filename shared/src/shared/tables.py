"""Markdown tables read as sentences.

A table row means nothing without its column names: ``| Standard customer | 30 days |`` only
answers "how long do I have to return an item?" when read as ``Customer type Standard customer;
Return window 30 days``. The retriever embeds and keyword-indexes rows that way, and the
agent quotes them that way, so both read a table as a person does.
"""

from __future__ import annotations

import re

__all__ = ["is_table_line", "is_table_rule", "row_cells", "row_sentence", "spell_out_tables"]

_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_EMPHASIS = re.compile(r"\*\*|__|`")


def is_table_line(line: str) -> bool:
    return line.lstrip().startswith("|")


def is_table_rule(line: str) -> bool:
    """The ``|---|:--:|`` line under a table's header."""
    return bool(_RULE.match(line))


def row_cells(line: str) -> list[str]:
    return [_EMPHASIS.sub("", c).strip() for c in line.strip().strip("|").split("|")]


def row_sentence(header: list[str], cells: list[str]) -> str:
    """``| L | 94-100 |`` under ``| Size | Chest |`` reads ``Size L; Chest 94-100.``"""
    named = [
        f"{name} {value}" if name and name.lower() not in value.lower() else value
        for name, value in zip(header, cells, strict=False)
        if value and value not in "-—"
    ]
    return "; ".join(named) + "."


def spell_out_tables(text: str) -> str:
    """``text`` with each Markdown table replaced by one sentence per row (other lines kept)."""
    out: list[str] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not is_table_line(line):
            header = None
            out.append(line)
        elif is_table_rule(line):
            continue
        elif header is None:
            header = row_cells(line)
        else:
            out.append(row_sentence(header, row_cells(line)))
    return "\n".join(out)
