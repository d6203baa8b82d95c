"""The eval dataset: one case per line of a JSON Lines file, validated line by line.

A case says who asks (``principal``), what (``input``), what kind of behaviour it tests
(``kind``) and what a correct outcome holds: key facts the answer states (``expected``),
documents it cites (``expected_sources``), the action it drafts (``expected_action``) and
strings it must never contain (``must_not_say``). See docs/evaluation.md for each kind.

A line that is not JSON, or lacks a field, is reported with its line number and skipped:
one bad line must not cost the rest of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.principal import Principal, StaffLevel

__all__ = [
    "KINDS",
    "Case",
    "CaseKind",
    "Dataset",
    "DatasetError",
    "ExpectedAction",
    "PrincipalSpec",
    "load_dataset",
    "parse_dataset",
]

CaseKind = Literal[
    "answer",
    "refusal",
    "permission_denial",
    "injection",
    "action",
    "action_refused",
    "pii_in_question",
]
#: In report order: the knowledge questions first, then what must not happen, then actions.
KINDS: tuple[CaseKind, ...] = get_args(CaseKind)

#: Argument values are compared, not just present: scalars only.
ArgumentValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrincipalSpec(_Strict):
    tenant: str = Field(min_length=1, description="Tenant the user belongs to.")
    roles: tuple[str, ...] = Field(min_length=1, description="Roles such as customer, support.")
    level: StaffLevel = Field(description="none (customers), L1, L2 or manager.")
    user_id: str | None = Field(
        default=None,
        min_length=1,
        description="Needed when ownership matters (actions on orders and accounts).",
    )

    def principal(self, default_user: str) -> Principal:
        return Principal(
            user_id=self.user_id or default_user,
            tenant_id=self.tenant,
            roles=self.roles,
            level=self.level,
        )


class ExpectedAction(_Strict):
    tool: str = Field(min_length=1, description="Registered tool name, e.g. issue_refund.")
    arguments: dict[str, ArgumentValue] = Field(
        default_factory=dict,
        description="Key arguments to compare (numbers as numbers, text case-insensitively);"
        " free-text arguments such as a reason are left out.",
    )


class Case(_Strict):
    id: str = Field(min_length=1, max_length=100)
    input: str = Field(min_length=1, description="The user's message.")
    principal: PrincipalSpec
    kind: CaseKind
    expected: tuple[str, ...] = Field(
        description="Key facts a correct answer states, checked case-insensitively."
    )
    expected_sources: tuple[str, ...] = Field(
        description="Documents that hold the answer; for permission_denial, the document the"
        " principal must not receive."
    )
    must_cite: bool = Field(description="The answer must cite one of expected_sources.")
    expected_action: ExpectedAction | None = Field(
        description="The action a correct run drafts, or null: no action may be drafted."
    )
    must_not_say: tuple[str, ...] = Field(
        default=(),
        description="Strings the answer must never contain: forbidden facts, injected claims,"
        " the personal data of the question.",
    )
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "action" and self.expected_action is None:
            raise ValueError("an action case needs expected_action")
        if self.kind != "action" and self.expected_action is not None:
            raise ValueError(f"a {self.kind} case drafts no action: expected_action must be null")
        if self.must_cite and not self.expected_sources:
            raise ValueError("must_cite needs expected_sources")
        if self.kind == "permission_denial" and not self.expected_sources:
            raise ValueError("a permission_denial case names the forbidden document")
        if self.kind == "pii_in_question" and not self.must_not_say:
            raise ValueError("a pii_in_question case lists its personal data in must_not_say")
        if any(not s.strip() for s in (*self.expected, *self.must_not_say)):
            raise ValueError("expected and must_not_say hold non-blank strings")
        return self


@dataclass(frozen=True)
class DatasetError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Dataset:
    path: Path
    cases: list[Case] = field(default_factory=list)
    errors: list[DatasetError] = field(default_factory=list)


def load_dataset(path: Path) -> Dataset:
    """Every valid case of the file; every invalid line as an error naming its number."""
    cases, errors = parse_dataset(path.read_text(encoding="utf-8").splitlines())
    return Dataset(path, cases, errors)


def parse_dataset(lines: Iterable[str]) -> tuple[list[Case], list[DatasetError]]:
    cases: list[Case] = []
    errors: list[DatasetError] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(DatasetError(number, f"not valid JSON ({exc.msg}, column {exc.colno})"))
            continue
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            errors.append(DatasetError(number, _explain(exc)))
            continue
        if case.id in seen:
            errors.append(
                DatasetError(number, f"duplicate id {case.id!r} (first on line {seen[case.id]})")
            )
            continue
        seen[case.id] = number
        cases.append(case)
    return cases, errors


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "missing":
            parts.append(f"missing field {where!r}")
        elif where:
            parts.append(f"{where}: {error['msg']}")
        else:  # a model-level rule (_consistent) or a line that is not an object
            parts.append(error["msg"].removeprefix("Value error, "))
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
