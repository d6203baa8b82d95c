"""``make demo``: four requests through the running stack, with answers, citations and traces."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import httpx

from shared.auth import TokenService
from shared.settings import AuthSettings

from .stack import SERVICES, LocalStack

QUESTIONS = [
    (
        "An allowed question (customer)",
        "casey.customer",
        ["customer"],
        "none",
        "How many days do I have to return an item?",
    ),
    (
        "An L2-only question asked by an L1 agent",
        "lee.l1",
        ["support"],
        "L1",
        "What is the monthly goodwill budget per agent?",
    ),
    (
        "Out of scope",
        "casey.customer",
        ["customer"],
        "none",
        "Who won the football match last night?",
    ),
    (
        "A request for action (refund)",
        "casey.customer",
        ["customer"],
        "none",
        "Please refund my order HP-10023 of 80 EUR, the stove arrived broken.",
    ),
]


def _trace(stack: LocalStack, trace_id: str) -> dict[str, Any]:
    """Spans arrive in batches a moment after the work: wait until all five services show."""
    deadline = time.monotonic() + 5
    while True:
        trace = httpx.get(f"{stack.sink_url}/traces/{trace_id}", timeout=5).json()
        if len(trace["services"]) >= len(SERVICES) or time.monotonic() > deadline:
            return dict(trace)
        time.sleep(0.2)


def run(stack: LocalStack) -> int:
    tokens = TokenService(AuthSettings())
    failures = 0
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as client:
        for title, user, roles, level, question in QUESTIONS:
            token = tokens.mint(user_id=user, tenant_id="harborpine", roles=roles, level=level)
            response = client.post(
                "/v1/chat",
                params={"wait": 15},
                json={"message": question},
                headers={"Authorization": f"Bearer {token}"},
            )
            print(f"\n=== {title}\n  {user} ({level}): {question}")
            if response.status_code >= 400:
                failures += 1
                print(f"  HTTP {response.status_code}: {response.text}")
                continue
            body = response.json()
            result = body.get("result") or {}
            print(f"  status: {body['status']}   request: {body['request_id']}")
            print(f"  trace:  {body['trace_id']}")
            if result.get("answer"):
                print(textwrap.indent(textwrap.fill(result["answer"], 96), "  > "))
            for citation in result.get("citations", []):
                where = f"{citation['title']} › {citation['section']}"
                print(f"    [{citation['marker']}] {where} ({citation['doc_id']})")
            if result.get("action") or body["status"] == "pending_approval":
                inbox = f"{stack.url('approver')}/inbox"
                print(
                    f"  the action waits for approval: {inbox} (an L1 token approves up to 100 EUR)"
                )
            trace = _trace(stack, body["trace_id"])
            print(f"  trace spans: {len(trace['spans'])} across {', '.join(trace['services'])}")
    return 1 if failures else 0
