from __future__ import annotations

from pydantic import Field

from shared.settings import HttpSettings, ServiceSettings, service_config


class AuditorSettings(ServiceSettings):
    model_config = service_config("AUDITOR_")

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8005))
    group_id: str = "auditor"
    batch_max_records: int = Field(default=500, ge=1)
