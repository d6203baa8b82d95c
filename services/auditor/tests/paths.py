"""The steps of each saga path, written out from the emitters (gateway api, retriever
handlers, agent handlers and toolgate, approver handlers, domain, executor and sweeper), not
from ``auditor.expectations``: the tests pin the table against what the services record."""

from __future__ import annotations

ACCEPTED = ["gateway:request.accepted"]
CHAT_ANSWER = [
    "retriever:guardrail.input",
    "retriever:retrieval.completed",
    "agent:agent.routed",
    "agent:guardrail.citations",
    "agent:guardrail.output",
    "agent:draft.produced",
]
CHAT_BLOCKED = ["retriever:guardrail.input", "agent:guardrail.input", "agent:draft.produced"]
CHAT_ACTION = [
    "retriever:guardrail.input",
    "retriever:retrieval.completed",
    "agent:agent.routed",
    "agent:guardrail.tool",
    "agent:tool.proposed",
    "agent:draft.produced",
]
MCP_ACTION = ["agent:guardrail.tool", "agent:tool.proposed", "agent:draft.produced"]
AUTO = ["approver:draft.auto_approved"]
PENDING = ["approver:approval.pending"]
APPROVED = [*PENDING, "approver:approval.signed", "approver:approval.approved"]
EXECUTED = [
    "approver:approval.pending",
    "approver:approval.signed",
    "approver:approval.signed",
    "approver:approval.approved",
    "approver:approval.executed",
]
