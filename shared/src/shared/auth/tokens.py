"""Verify and mint JWTs whose claims name a :class:`~shared.principal.Principal`.

Claims: ``sub`` (user), ``tenant``, ``roles`` (list), ``level`` (none/L1/L2/manager), plus the
standard ``iss``, ``aud``, ``iat``, ``exp``. Every claim is required: a token that lacks one,
is expired, is signed with another key or algorithm, or lives longer than ``max_ttl_s`` is
refused. There is no anonymous principal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jwt
from pydantic import ValidationError

from shared.principal import Principal, StaffLevel
from shared.settings import AuthSettings

__all__ = ["AuthError", "TokenService"]

_REQUIRED = ["sub", "tenant", "roles", "level", "iss", "aud", "iat", "exp"]


class AuthError(Exception):
    """The token does not authenticate anyone; the message is safe to show the caller."""


class TokenService:
    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        if settings.algorithm == "HS256":
            if settings.jwt_secret is None:
                raise ValueError("AUTH_JWT_SECRET is required for HS256")
            secret = settings.jwt_secret.get_secret_value()
            self._verify_key: str = secret
            self._sign_key: str | None = secret
        else:
            if not settings.jwt_public_key:
                raise ValueError(f"AUTH_JWT_PUBLIC_KEY is required for {settings.algorithm}")
            self._verify_key = settings.jwt_public_key
            private = settings.jwt_private_key
            self._sign_key = private.get_secret_value() if private else None

    def verify(self, token: str) -> Principal:
        s = self._settings
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[s.algorithm],  # pinned: no alg confusion, no "none"
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if int(claims["exp"]) - int(claims["iat"]) > s.max_ttl_s:
            raise AuthError("token lifetime exceeds the allowed maximum")
        roles = claims["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise AuthError("invalid token: roles must be a list of strings")
        try:
            return Principal(
                user_id=str(claims["sub"]),
                tenant_id=str(claims["tenant"]),
                roles=tuple(roles),
                level=StaffLevel(claims["level"]),
            )
        except (ValueError, ValidationError) as exc:
            raise AuthError(f"invalid token claims: {exc}") from None

    def mint(
        self,
        *,
        user_id: str,
        tenant_id: str,
        roles: Sequence[str],
        level: StaffLevel | str,
        ttl_s: int = 3600,
        now: float | None = None,
    ) -> str:
        if self._sign_key is None:
            raise ValueError("no signing key configured (AUTH_JWT_PRIVATE_KEY)")
        issued = int(now if now is not None else time.time())
        principal = Principal(
            user_id=user_id, tenant_id=tenant_id, roles=tuple(roles), level=StaffLevel(level)
        )
        claims = {
            "sub": principal.user_id,
            "tenant": principal.tenant_id,
            "roles": list(principal.roles),
            "level": principal.level.value,
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "iat": issued,
            "exp": issued + ttl_s,
        }
        return jwt.encode(claims, self._sign_key, algorithm=self._settings.algorithm)
