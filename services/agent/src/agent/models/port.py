"""The chat-model port: a conversation in, one model turn out.

The conversation is kept structured (question, retrieved chunks, tool descriptors, tool
turns so far) rather than as provider messages, so each adapter renders it its own way: the
OpenAI adapter into chat-completions messages with the chunks fenced as data, the offline
extractive model by reading the chunks directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.contracts import RetrievedChunk, RiskLevel
from shared.principal import Principal

__all__ = [
    "ChatModel",
    "Conversation",
    "ModelError",
    "ModelReply",
    "PermanentModelError",
    "ToolCall",
    "ToolDescriptor",
    "ToolTurn",
    "TransientModelError",
    "Usage",
]


class ModelError(Exception):
    """A model call failed; ``reason`` is a short stable label for audit and metrics."""

    reason = "model_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TransientModelError(ModelError):
    """Worth retrying on the same model: timeouts, 429, 5xx, connection resets."""

    reason = "transient"


class PermanentModelError(ModelError):
    """Retrying the same call cannot help (bad request, auth, unparseable reply)."""

    reason = "permanent"


@dataclass(frozen=True)
class ToolDescriptor:
    """What a model is told about one tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    risk: RiskLevel


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolTurn:
    """One tool call the model made and what came back (a result or an error)."""

    call: ToolCall
    ok: bool
    content: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Conversation:
    question: str
    principal: Principal
    chunks: Sequence[RetrievedChunk]
    tools: Sequence[ToolDescriptor] = ()
    turns: tuple[ToolTurn, ...] = ()
    #: False on the last step of the budget: the model must answer with what it has.
    allow_tools: bool = True

    def with_turns(self, *turns: ToolTurn) -> Conversation:
        return Conversation(
            self.question,
            self.principal,
            self.chunks,
            self.tools,
            (*self.turns, *turns),
            self.allow_tools,
        )

    def final(self) -> Conversation:
        return Conversation(
            self.question, self.principal, self.chunks, self.tools, self.turns, allow_tools=False
        )


@dataclass(frozen=True)
class ModelReply:
    """One turn: tool calls to make, or the final text (citing chunks as ``[n]``, 1-based)."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"


class ChatModel(Protocol):
    @property
    def name(self) -> str:
        """The model id requested (``gen_ai.request.model``)."""
        ...

    @property
    def provider(self) -> str:
        """``gen_ai.provider.name``: openai, offline, ..."""
        ...

    async def complete(self, conversation: Conversation) -> ModelReply: ...
