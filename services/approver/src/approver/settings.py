from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, ServiceSettings


class ApproverSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="APPROVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8004))
    group_id: str = "approver"
    pending_ttl_hours: float = Field(
        default=72.0, gt=0, description="Pending drafts expire after this."
    )
