"""The events of the saga, one per topic, named in the past tense.

Field descriptions are part of the contract: FastStream's AsyncAPI export documents every
topic from them (``make asyncapi``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from shared.principal import Classification, Principal, StaffLevel

from .base import Event

__all__ = [
    "AuditOutcome",
    "AuditRecorded",
    "ChatRequested",
    "Citation",
    "ContextRetrieved",
    "CostItem",
    "Decision",
    "DraftDecided",
    "DraftKind",
    "DraftProduced",
    "ExecutionResult",
    "GuardrailVerdict",
    "ModelRoute",
    "ProposedAction",
    "RequestCost",
    "RetrievalStats",
    "RetrievedChunk",
    "RiskLevel",
    "ScoredSentence",
    "Signoff",
]

MAX_MESSAGE_CHARS = 4000

_Frozen = ConfigDict(frozen=True, extra="ignore")


# --------------------------------------------------------------------------- request
class ChatRequested(Event):
    """A user asked something. Published by the gateway or any upstream system to ``request``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    principal: Principal = Field(description="Who asks: user, tenant, roles and staff level.")
    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="The user's question or instruction, as typed.",
    )
    channel: Literal["web", "chat", "email", "api", "mcp"] = Field(
        default="api", description="Where the request came from."
    )
    conversation_id: str | None = Field(
        default=None, max_length=128, description="Groups requests of one conversation."
    )

    @field_validator("message")
    @classmethod
    def _printable(cls, message: str) -> str:
        stripped = message.strip()
        if not stripped:
            raise ValueError("message is blank")
        return stripped


# --------------------------------------------------------------------------- retrieved
class ScoredSentence(BaseModel):
    """A sentence of a retrieved chunk and how close its meaning is to the question."""

    model_config = _Frozen

    text: str = Field(description="The sentence as the retriever split and embedded it.")
    similarity: float = Field(description="Cosine similarity of its vector to the question's.")


class RetrievedChunk(BaseModel):
    """One passage the principal is allowed to read, with where it comes from."""

    model_config = _Frozen

    chunk_id: str = Field(description="Stable id of the chunk within the index.")
    doc_id: str = Field(description="Id of the source document.")
    doc_version: str = Field(description="Content hash of the document version indexed.")
    title: str = Field(description="Document title.")
    section_path: tuple[str, ...] = Field(default=(), description="Headings above the chunk.")
    source_uri: str = Field(description="Where the document lives (file, URL).")
    text: str = Field(description="The passage text.")
    score: float = Field(description="Final relevance score (higher is better).")
    stage_scores: dict[str, float] = Field(
        default_factory=dict, description="Score from each retrieval stage (bm25, dense, ...)."
    )
    classification: Classification = Field(description="Sensitivity of the source document.")
    min_level: StaffLevel = Field(description="Minimum staff level allowed to read it.")
    updated_at: datetime | None = Field(default=None, description="Last change of the document.")
    sentences: tuple[ScoredSentence, ...] = Field(
        default=(),
        description="The chunk's sentences with their cosine similarity to the question, as"
        " the retriever's sentence vectors measure it (empty from older retrievers).",
    )


class RetrievalStats(BaseModel):
    model_config = _Frozen

    candidates: int = Field(ge=0, description="Chunks considered before the final cut.")
    latency_ms: float = Field(ge=0, description="Time spent retrieving.")
    cache_hit: bool = Field(default=False, description="Served from the retrieval cache.")
    index_version: str = Field(description="Version of the index that answered.")
    embedding_model: str = Field(description="Embedding model used for the query.")
    embedding_tokens: int = Field(
        default=0,
        ge=0,
        description="Tokens embedded for the query (0 when its vector or the result was cached).",
    )
    embedding_cache_hit: bool = Field(
        default=False, description="The query's vector came from the embedding cache."
    )
    content_version: str = Field(
        default="",
        description="Digest of the tenant's indexed documents and versions: equal on every"
        " replica holding the same documents; the caches key on it.",
    )


class GuardrailVerdict(BaseModel):
    """What a guardrail stage decided about a request, and why."""

    model_config = _Frozen

    stage: Literal["input", "retrieval", "output", "tool"] = Field(description="Which guardrail.")
    blocked: bool = Field(description="True when the request must not proceed as asked.")
    score: float = Field(description="Detector score in [0, 1] (higher is more suspicious).")
    signals: tuple[str, ...] = Field(default=(), description="Which rules or features fired.")
    detector: str = Field(description="Detector name and version.")


class ContextRetrieved(Event):
    """The permitted chunks for a request. Published by the retriever to ``retrieved``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    request: ChatRequested = Field(description="The request being answered.")
    input_verdict: GuardrailVerdict | None = Field(
        default=None,
        description="The input guardrail's verdict; when blocked, no retrieval was done.",
    )
    chunks: tuple[RetrievedChunk, ...] = Field(
        default=(), description="Top chunks, best first, all readable by the principal."
    )
    stats: RetrievalStats = Field(description="How the retrieval went.")


# --------------------------------------------------------------------------- draft
class DraftKind(StrEnum):
    ANSWER = "answer"
    ACTION = "action"
    REFUSAL = "refusal"


class RiskLevel(StrEnum):
    READ = "read"
    WRITE = "write"
    CRITICAL = "critical"


class Citation(BaseModel):
    model_config = _Frozen

    marker: int = Field(ge=1, description="The n of `[n]` in the answer.")
    chunk_id: str = Field(description="Cited chunk.")
    doc_id: str = Field(description="Document of the cited chunk.")
    title: str = Field(description="Title of the cited document.")
    source_uri: str = Field(description="Where the cited document lives.")
    section: str = Field(default="", description="Section heading path of the chunk.")


class ProposedAction(BaseModel):
    """A write the agent wants done; it runs only after approval."""

    model_config = _Frozen

    tool: str = Field(description="Registered tool name, e.g. issue_refund.")
    arguments: dict[str, JsonValue] = Field(description="Arguments validated by the tool schema.")
    risk: RiskLevel = Field(description="Risk level declared by the tool.")
    summary: str = Field(description="One line a human approver reads.")


class ModelRoute(BaseModel):
    """How the agent chose its model for a request, and what happened on the way."""

    model_config = _Frozen

    route: Literal["routine", "high_risk"] = Field(
        description="routine goes to the small model, high_risk to the large one."
    )
    reason: str = Field(description="The rule or classifier that decided the route.")
    requested_model: str = Field(description="The model the route chose first.")
    fallbacks: tuple[str, ...] = Field(
        default=(),
        description="Models that failed before the one that produced the draft, in order.",
    )


class CostItem(BaseModel):
    """Tokens one model spent on one request, and what they cost."""

    model_config = _Frozen

    model: str = Field(description="Model that spent the tokens.")
    operation: Literal["chat", "embeddings"] = Field(description="Chat or embedding calls.")
    input_tokens: int = Field(ge=0, description="Input (or embedded) tokens.")
    output_tokens: int = Field(default=0, ge=0, description="Output tokens (chat only).")
    usd: float = Field(ge=0, description="Cost at the price table's rates, in USD.")
    priced: bool = Field(
        default=True, description="False when the model is not in the price table (usd is 0)."
    )


class RequestCost(BaseModel):
    """What producing a draft cost: embedding the query and every model call of the agent."""

    model_config = _Frozen

    usd: float = Field(ge=0, description="Total cost of the request so far, in USD.")
    items: tuple[CostItem, ...] = Field(default=(), description="Per model and operation.")


class DraftProduced(Event):
    """An answer with citations, a refusal, or a proposed action. Agent → ``draft``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    request: ChatRequested = Field(description="The request being answered.")
    kind: DraftKind = Field(description="answer, action or refusal.")
    answer: str = Field(description="Text for the user; cites chunks as [n].")
    citations: tuple[Citation, ...] = Field(default=(), description="What each [n] points at.")
    action: ProposedAction | None = Field(default=None, description="Set when kind is action.")
    model: str = Field(description="Model that produced the draft.")
    retrieved_event_id: uuid.UUID = Field(description="The ContextRetrieved this draft used.")
    route: ModelRoute | None = Field(
        default=None,
        description="Routine or high-risk routing and model fallbacks (absent from older agents).",
    )
    cost: RequestCost | None = Field(
        default=None,
        description="Tokens and USD spent producing this draft, per model (absent from older"
        " agents). A draft served from the answer cache costs only the query's embedding.",
    )
    served_from_cache: bool = Field(
        default=False,
        description="The answer was served from the safe-answer cache (same question, same"
        " permission scope, same index version) instead of being generated again.",
    )


# --------------------------------------------------------------------------- approved
class Decision(StrEnum):
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Signoff(BaseModel):
    model_config = _Frozen

    approver_id: str = Field(description="User who decided.")
    level: StaffLevel = Field(description="Their staff level at the time.")
    decision: Literal["approve", "reject"] = Field(description="What they decided.")
    reason: str = Field(default="", description="Why (required for rejections).")
    at: datetime = Field(description="When.")


class ExecutionResult(BaseModel):
    model_config = _Frozen

    status: Literal["succeeded", "failed"] = Field(description="Outcome of the action.")
    idempotency_key: str = Field(description="Key the effect was executed under.")
    effect_id: str | None = Field(default=None, description="Id of the effect (refund id, ...).")
    detail: str = Field(default="", description="Human-readable result.")


class DraftDecided(Event):
    """The final decision on a draft. Approver → ``approved``; the gateway answers from it."""

    SCHEMA_VERSION: ClassVar[int] = 1

    draft: DraftProduced = Field(description="The draft decided on.")
    decision: Decision = Field(description="auto_approved, approved, rejected or expired.")
    policy: str = Field(description="Name of the policy rule that applied.")
    signoffs: tuple[Signoff, ...] = Field(default=(), description="Human decisions, if any.")
    reason: str = Field(default="", description="Why, in a sentence.")
    execution: ExecutionResult | None = Field(
        default=None, description="Result of executing an approved action."
    )


# --------------------------------------------------------------------------- audit
class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    ERROR = "error"
    PENDING = "pending"


class AuditRecorded(Event):
    """One step of one saga, for the append-only audit log. Every service → ``audit``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    service: str = Field(description="Service that took the step.")
    action: str = Field(description="What happened, dotted: retrieval.completed, dlq.routed, ...")
    outcome: AuditOutcome = Field(default=AuditOutcome.OK, description="ok, denied, error, ...")
    actor: str = Field(description="User id on whose behalf, or the service itself.")
    subject_event_id: uuid.UUID | None = Field(
        default=None, description="The event this step handled or produced."
    )
    trace_id: str | None = Field(default=None, description="W3C trace id of the saga.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Small JSON facts about the step; never secrets or PII."
    )
