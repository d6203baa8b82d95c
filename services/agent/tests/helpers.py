"""Builders shared by the agent's tests: chunks from the sample knowledge base, events, fakes."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import (
    ChatRequested,
    ContextRetrieved,
    GuardrailVerdict,
    RetrievalStats,
    RetrievedChunk,
    RiskLevel,
)
from shared.principal import Classification, Principal, StaffLevel
from shared.tools import ToolContext, ToolError, ToolRegistry, ToolResult, ToolSpec
from shared.tools.guards import (
    AccountFacts,
    GuardError,
    OrderFacts,
    account_problem,
    as_tool_error,
    order_access_problem,
    refund_problem,
)
from shared.tools.postgres import IssueRefundArgs, default_registry

KB = Path(__file__).resolve().parents[3] / "deploy" / "knowledge-base"

CUSTOMER = Principal(user_id="casey", tenant_id="harborpine", roles=("customer",))
L1 = Principal(user_id="lee", tenant_id="harborpine", roles=("support",), level=StaffLevel.L1)


def kb_chunks(doc: str, sections: tuple[str, ...] | None = None) -> list[RetrievedChunk]:
    """The sections of one knowledge-base document as retrieved chunks (split at ``##``)."""
    path = next(KB.rglob(f"{doc}.md"))
    body = path.read_text().split("---", 2)[2]
    title = re.search(r"^# (.+)$", body, re.MULTILINE)
    assert title
    parts = re.split(r"^## ", body, flags=re.MULTILINE)[1:]
    chunks = []
    for i, part in enumerate(parts):
        heading, _, text = part.partition("\n")
        if sections and heading.strip() not in sections:
            continue
        chunks.append(
            RetrievedChunk(
                chunk_id=f"{doc}#{i}",
                doc_id=doc,
                doc_version="v1",
                title=title.group(1),
                section_path=(title.group(1), heading.strip()),
                source_uri=f"kb://{doc}",
                text=text.strip(),
                score=1.0 / (i + 1),
                classification=Classification.PUBLIC,
                min_level=StaffLevel.NONE,
            )
        )
    return chunks


def retrieved(
    message: str,
    chunks: list[RetrievedChunk],
    principal: Principal = CUSTOMER,
    verdict: GuardrailVerdict | None = None,
) -> ContextRetrieved:
    request = ChatRequested(
        request_id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        principal=principal,
        message=message,
    )
    return ContextRetrieved(
        request_id=request.request_id,
        tenant_id=request.tenant_id,
        request=request,
        input_verdict=verdict,
        chunks=tuple(chunks),
        stats=RetrievalStats(
            candidates=len(chunks), latency_ms=1.0, index_version="t", embedding_model="t"
        ),
    )


class _OrderArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(pattern=r"^[A-Z]{2,4}-?\d{3,12}$")


ORDERS = {
    "HP-10023": {"customer_id": "casey", "status": "delivered", "total": "89.90"},
    "HP-10031": {"customer_id": "sam", "status": "processing", "total": "2450.00"},
}


async def _fake_order_status(ctx: ToolContext, args: _OrderArgs) -> ToolResult:
    order = ORDERS.get(args.order_id)
    if order is None or order["customer_id"] != ctx.principal.user_id:
        raise ToolError(f"order {args.order_id} not found")
    return ToolResult(
        {"order_id": args.order_id, "status": order["status"], "total": order["total"]}
    )


def _fake_order(order_id: str) -> OrderFacts | None:
    order = ORDERS.get(order_id.upper())
    if order is None:
        return None
    return OrderFacts(
        order_id=order_id.upper(),
        customer_id=order["customer_id"],
        status=order["status"],
        total=Decimal(order["total"]),
        currency="EUR",
    )


async def _fake_check(ctx: ToolContext, args: Any) -> object:
    """The write tools' pre-flight over ORDERS, with the production rules (shared.tools.guards)."""
    try:
        if isinstance(args, IssueRefundArgs):
            refund_problem(
                ctx.principal,
                _fake_order(args.order_id),
                order_id=args.order_id,
                amount=args.amount,
                currency=args.currency,
            )
        elif getattr(args, "order_id", None):
            order_access_problem(ctx.principal, _fake_order(args.order_id), args.order_id)
        elif getattr(args, "user_id", None):
            account = AccountFacts(args.user_id, "active")
            account_problem(ctx.principal, account, args.user_id)
    except GuardError as exc:
        raise as_tool_error(exc) from None
    return None


def fake_registry() -> ToolRegistry:
    """The default registry's specs, with an in-memory order_status and in-memory pre-flight
    checks of the write tools: no database needed."""
    specs: list[ToolSpec[Any]] = [
        replace(s, check=_fake_check) if s.check is not None else s
        for s in default_registry().specs()
        if s.name != "order_status"
    ]
    specs.append(
        ToolSpec(
            "order_status", "Status of an order.", _OrderArgs, RiskLevel.READ, _fake_order_status
        )
    )
    return ToolRegistry(specs)


class FakeConnection:
    """Enough of an AsyncConnection for tools that never touch it."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    async def execute(self, query: str, *args: Any) -> None:
        self.statements.append(query)


@asynccontextmanager
async def fake_connect() -> AsyncIterator[Any]:
    yield FakeConnection()
