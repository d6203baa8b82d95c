from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import HttpSettings, ServiceSettings


class AuditorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUDITOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8005))
    group_id: str = "auditor"
    batch_max_records: int = Field(default=500, ge=1)
