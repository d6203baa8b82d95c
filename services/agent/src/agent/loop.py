"""The agent loop: the model sees the chunks and the tools, may look things up, then answers.

Each step asks the model chain for one turn. Tool calls go through the tool gateway: read
results (or their errors) go back to the model as the next step's context; a write tool that
passes the guardrail ends the loop as a proposed action (it never runs here). The budget
bounds both the model turns and the tool calls; the last step is offered no tools, so the
loop always ends with an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.contracts import ProposedAction

from .models import ChatModel, Conversation, ModelReply, ToolTurn, Usage
from .resilience import ChainReply, ModelChain
from .settings import LoopSettings
from .toolgate import AuditSink, ToolGateway, ToolRequest

__all__ = ["LoopResult", "run_loop"]


@dataclass(frozen=True)
class LoopResult:
    reply: ModelReply
    conversation: Conversation
    model: str
    provider: str
    fallbacks: tuple[str, ...]
    steps: int
    usage: Usage
    action: ProposedAction | None = None
    #: Tokens per model that answered a step (a fallback mid-loop splits them), for pricing.
    usage_by_model: tuple[tuple[str, Usage], ...] = ()


async def run_loop(
    conversation: Conversation,
    *,
    chain: Sequence[ChatModel],
    models: ModelChain,
    tools: ToolGateway,
    budget: LoopSettings,
    request_id: str,
    audit: AuditSink,
    route: str = "unknown",
) -> LoopResult:
    calls_left = budget.max_tool_calls
    usage = Usage()
    by_model: dict[str, Usage] = {}
    fallbacks: list[str] = []
    for step in range(1, budget.max_steps + 1):
        if step == budget.max_steps or calls_left == 0:
            conversation = conversation.final()
        answered = await models.complete(chain, conversation, audit, route=route)
        reply = answered.reply
        fallbacks.extend(f for f in answered.fallbacks if f not in fallbacks)
        # Once a model failed, the rest of this request stays on the model that answered.
        chain = chain[chain.index(answered.model) :]
        usage = Usage(
            usage.input_tokens + reply.usage.input_tokens,
            usage.output_tokens + reply.usage.output_tokens,
        )
        name = answered.model.name
        spent = by_model.get(name, Usage())
        by_model[name] = Usage(
            spent.input_tokens + reply.usage.input_tokens,
            spent.output_tokens + reply.usage.output_tokens,
        )
        if not reply.tool_calls or not conversation.allow_tools:
            return _result(reply, conversation, answered, fallbacks, step, usage, by_model=by_model)
        turns: list[ToolTurn] = []
        for call in reply.tool_calls:
            if calls_left == 0:
                turns.append(
                    ToolTurn(
                        call, False, {"code": "budget_exhausted", "message": "no tool calls left"}
                    )
                )
                continue
            calls_left -= 1
            outcome = await tools.call(
                ToolRequest(
                    name=call.name,
                    arguments=call.arguments,
                    principal=conversation.principal,
                    request_id=request_id,
                    origin="agent",
                    user_message=conversation.question,
                    call_id=call.id,
                ),
                audit,
            )
            if outcome.action is not None:
                return _result(
                    reply,
                    conversation,
                    answered,
                    fallbacks,
                    step,
                    usage,
                    outcome.action,
                    by_model=by_model,
                )
            turns.append(ToolTurn(call, outcome.ok, outcome.data))
        conversation = conversation.with_turns(*turns)
    raise AssertionError("the last step offers no tools, so it always answers")  # pragma: no cover


def _result(
    reply: ModelReply,
    conversation: Conversation,
    answered: ChainReply,
    fallbacks: list[str],
    step: int,
    usage: Usage,
    action: ProposedAction | None = None,
    *,
    by_model: dict[str, Usage],
) -> LoopResult:
    return LoopResult(
        reply=reply,
        conversation=conversation,
        model=reply.model or answered.model.name,
        provider=answered.model.provider,
        fallbacks=tuple(fallbacks),
        steps=step,
        usage=usage,
        action=action,
        usage_by_model=tuple(by_model.items()),
    )
