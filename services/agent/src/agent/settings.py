from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, ServiceSettings


class AgentSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8003))
    group_id: str = "agent"
    max_answer_sentences: int = Field(default=3, ge=1, le=8)
    min_relevance: float = Field(
        default=0.34,
        ge=0,
        le=1,
        description="Share of the question's term weight a chunk must cover.",
    )
