"""Chat models behind one port: the offline extractive model and OpenAI-compatible APIs."""

from .extractive import LANGUAGE_REFUSAL_TEXT, REFUSAL_TEXT, Answer, ExtractiveModel
from .openai_chat import OpenAIChatModel
from .port import (
    ChatModel,
    Conversation,
    ModelError,
    ModelReply,
    PermanentModelError,
    ToolCall,
    ToolDescriptor,
    ToolTurn,
    TransientModelError,
    Usage,
)

__all__ = [
    "LANGUAGE_REFUSAL_TEXT",
    "REFUSAL_TEXT",
    "Answer",
    "ChatModel",
    "Conversation",
    "ExtractiveModel",
    "ModelError",
    "ModelReply",
    "OpenAIChatModel",
    "PermanentModelError",
    "ToolCall",
    "ToolDescriptor",
    "ToolTurn",
    "TransientModelError",
    "Usage",
]
