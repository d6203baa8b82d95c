"""Who may manage knowledge: the rule shared by the HTTP endpoint (and testable without it).

A knowledge admin is a staff member (at least ``admin_min_level``) holding one of
``admin_roles``, and manages documents of their own tenant only, and only documents they are
cleared to read: an L1 admin cannot upload, replace or delete a confidential document.
"""

from __future__ import annotations

from shared.principal import Classification, Principal

from .settings import IngestSettings

__all__ = ["Forbidden", "authorise_admin", "authorise_document"]


class Forbidden(Exception):
    """The principal may not do this; the message is safe to show them."""


def authorise_admin(principal: Principal, settings: IngestSettings) -> None:
    roles = set(settings.admin_roles)
    if not roles & set(principal.roles) or not principal.level.at_least(settings.admin_min_level):
        raise Forbidden(
            f"managing knowledge needs one of the roles {sorted(roles)}"
            f" and staff level {settings.admin_min_level.value} or above"
        )


def authorise_document(principal: Principal, tenant: str, classification: Classification) -> None:
    if tenant != principal.tenant_id:
        raise Forbidden(f"documents of tenant {tenant!r} belong to another tenant")
    if classification.rank > principal.clearance.rank:
        raise Forbidden(
            f"a {classification.value} document is above your clearance"
            f" ({principal.clearance.value})"
        )
