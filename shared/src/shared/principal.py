"""Who is asking: the identity every request carries through the saga.

The gateway builds a :class:`Principal` from a verified token; upstream systems that publish to
``request`` directly put the same object in the message. The retriever turns it into index filters,
the agent and approver into tool and approval permissions.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Classification", "Principal", "StaffLevel"]


class StaffLevel(StrEnum):
    """Support staff level. ``none`` is a customer or any non-staff user."""

    NONE = "none"
    L1 = "L1"
    L2 = "L2"
    MANAGER = "manager"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    def at_least(self, other: StaffLevel) -> bool:
        return self.rank >= other.rank

    def levels_up_to(self) -> tuple[StaffLevel, ...]:
        """Every level this one outranks or equals: the ``min_level`` values it may read."""
        return tuple(level for level in StaffLevel if level.rank <= self.rank)


_LEVEL_RANK = {StaffLevel.NONE: 0, StaffLevel.L1: 1, StaffLevel.L2: 2, StaffLevel.MANAGER: 3}


class Classification(StrEnum):
    """Sensitivity of a document, from least to most sensitive."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return list(Classification).index(self)

    @classmethod
    def clearance_for(cls, level: StaffLevel) -> Classification:
        """Highest classification a staff level is cleared for.

        Customers read public documents only; L1 staff internal; L2 confidential; managers
        everything. Roles narrow this further (a role must be allowed on the document).
        """
        return _CLEARANCE[level]

    def readable_up_to(self) -> tuple[Classification, ...]:
        return tuple(c for c in Classification if c.rank <= self.rank)


_CLEARANCE = {
    StaffLevel.NONE: Classification.PUBLIC,
    StaffLevel.L1: Classification.INTERNAL,
    StaffLevel.L2: Classification.CONFIDENTIAL,
    StaffLevel.MANAGER: Classification.RESTRICTED,
}


class Principal(BaseModel):
    """An authenticated user acting within one tenant."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str = Field(min_length=1, max_length=128, description="Stable user id (token `sub`).")
    tenant_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="Tenant the user belongs to; every read and write is scoped to it.",
    )
    roles: tuple[str, ...] = Field(
        default=(),
        description="Roles such as customer, support, finance, hr, engineering, management.",
    )
    level: StaffLevel = Field(
        default=StaffLevel.NONE,
        description="Staff level: none (customer), L1, L2 or manager.",
    )

    @field_validator("roles")
    @classmethod
    def _normalise_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({r.strip().lower() for r in roles if r.strip()}))

    @property
    def clearance(self) -> Classification:
        return Classification.clearance_for(self.level)

    @property
    def scope_key(self) -> str:
        """A string naming everything that decides what this principal may read.

        Two principals with the same scope key see exactly the same documents, so caches
        keyed by it can never leak across a permission boundary.
        """
        return f"{self.tenant_id}|{','.join(self.roles)}|{self.level.value}"

    def pseudonym(self, key: bytes) -> str:
        """A stable id for ``enduser.id`` on spans: a keyed hash of tenant and user.

        The same user always maps to the same value, so an operator can find all of one
        user's traces from a complaint (by computing it with the key), but the value names no
        one to whoever reads the traces without the key.
        """
        message = f"{self.tenant_id}\x1f{self.user_id}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:24]
