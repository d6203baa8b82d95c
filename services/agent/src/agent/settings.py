"""Agent settings (``AGENT_`` prefix, nested blocks with ``__``).

The defaults run fully offline: the extractive model answers, no chat endpoint is needed.
Setting ``AGENT_MODEL__PROVIDER=openai`` plus a base URL and key routes requests to an
OpenAI-compatible chat API, small model for routine requests, large for high-risk ones,
with the offline model as the last fallback.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator

from shared.settings import NESTED_BLOCK, Environment, HttpSettings, ServiceSettings, service_config

__all__ = [
    "AgentSettings",
    "LoopSettings",
    "McpSettings",
    "ModelSettings",
    "RateLimitSettings",
    "ResilienceSettings",
    "RoutingSettings",
]


class ModelSettings(BaseModel):
    """Which chat models answer (``AGENT_MODEL__*``)."""

    model_config = NESTED_BLOCK

    provider: Literal["offline", "openai"] = Field(
        default="offline",
        description="offline: the extractive model only; openai: an OpenAI-compatible API.",
    )
    base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8080/v1")
    api_key: SecretStr | None = Field(default=None, description="Bearer key of the chat API.")
    small_model: str = Field(default="gpt-4.1-mini", description="Routine requests.")
    large_model: str = Field(default="gpt-4.1", description="High-risk requests.")
    timeout_s: float = Field(default=20.0, gt=0, description="Per call, connect to last byte.")
    max_output_tokens: int = Field(default=600, ge=16, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_sentences: int = Field(default=3, ge=1, le=8, description="Offline model answer length.")
    min_relevance: float = Field(
        default=0.44,
        ge=0,
        le=1,
        description="Offline model: answerability a sentence must reach (its blend of term"
        " coverage and meaning); below it the model refuses. Chosen with make bench-answers.",
    )
    semantic_weight: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="Offline model: share of a sentence's score from its meaning (the"
        " retriever's sentence similarity) beside its term coverage.",
    )

    @model_validator(mode="after")
    def _endpoint_when_online(self) -> Self:
        if self.provider == "openai" and not self.base_url:
            raise ValueError("AGENT_MODEL__BASE_URL is required when the provider is openai")
        return self


class ResilienceSettings(BaseModel):
    """Retries and circuit breakers around each chat model (``AGENT_RESILIENCE__*``)."""

    model_config = NESTED_BLOCK

    attempts: int = Field(default=3, ge=1, le=10, description="Tries per model, first included.")
    backoff_initial_s: float = Field(default=0.2, ge=0)
    backoff_max_s: float = Field(default=4.0, ge=0)
    backoff_jitter_s: float = Field(default=0.2, ge=0)
    breaker_threshold: int = Field(
        default=5, ge=1, description="Consecutive failures that open a model's circuit."
    )
    breaker_reset_s: float = Field(
        default=30.0, gt=0, description="How long an open circuit refuses calls before a probe."
    )


class RoutingSettings(BaseModel):
    """Routine vs high-risk classification (``AGENT_ROUTING__*``)."""

    model_config = NESTED_BLOCK

    classifier: Literal["rules", "model"] = Field(
        default="rules",
        description="rules only, or rules first and the small model for undecided requests.",
    )
    high_risk_amount: float = Field(
        default=250.0, ge=0, description="Amounts above this in a request make it high-risk."
    )
    injection_score: float = Field(
        default=0.3, ge=0, le=1, description="Input-guardrail scores above this are high-risk."
    )


class LoopSettings(BaseModel):
    """The agent loop's budget (``AGENT_LOOP__*``)."""

    model_config = NESTED_BLOCK

    max_steps: int = Field(default=4, ge=1, le=12, description="Model turns per request.")
    max_tool_calls: int = Field(default=6, ge=0, le=32, description="Tool calls per request.")


class RateLimitSettings(BaseModel):
    """Per-tenant token buckets shared by every agent replica (``AGENT_RATE_LIMIT__*``)."""

    model_config = NESTED_BLOCK

    read_per_minute: float = Field(default=600.0, gt=0, description="Read tool calls.")
    read_burst: int = Field(default=60, ge=1)
    propose_per_minute: float = Field(default=60.0, gt=0, description="Write-action proposals.")
    propose_burst: int = Field(default=20, ge=1)


class McpSettings(BaseModel):
    """The MCP server the agent hosts over its HTTP port (``AGENT_MCP__*``)."""

    model_config = NESTED_BLOCK

    enabled: bool = True
    path: str = Field(default="/mcp", pattern=r"^/[a-z0-9/_-]*$")
    allowed_hosts: tuple[str, ...] = Field(
        default=("127.0.0.1:*", "localhost:*", "[::1]:*"),
        description="Host headers accepted (DNS-rebinding protection); add the public name.",
    )


class AgentSettings(ServiceSettings):
    model_config = service_config("AGENT_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8003))
    group_id: str = "agent"
    model: ModelSettings = Field(default_factory=ModelSettings)
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    mcp: McpSettings = Field(default_factory=McpSettings)

    @model_validator(mode="after")
    def _real_key_in_production(self) -> Self:
        if (
            self.environment is Environment.PRODUCTION
            and self.model.provider == "openai"
            and self.model.api_key is None
        ):
            raise ValueError("AGENT_MODEL__API_KEY must be set in production")
        return self
