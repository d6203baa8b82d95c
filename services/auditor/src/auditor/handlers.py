"""Auditor logic: plain functions over the AuditLog port."""

from __future__ import annotations

from collections.abc import Sequence

from shared.contracts import AuditRecorded

from .repository import AuditLog


async def record_steps(events: Sequence[AuditRecorded], log: AuditLog) -> int:
    """Append a batch of audit events; redeliveries are dropped by ``event_id``."""
    return await log.append(events)
