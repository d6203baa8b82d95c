"""FastAPI dependency: the caller's :class:`Principal` from ``Authorization: Bearer``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import log_context
from shared.principal import Principal

from .tokens import AuthError, TokenService

__all__ = ["principal_dependency"]

_bearer = HTTPBearer(auto_error=False, description="JWT minted by `platform-token mint`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def principal_dependency(tokens: TokenService) -> Callable[..., Awaitable[Principal]]:
    async def current_principal(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        if credentials is None:
            raise HTTPException(401, {"message": "missing bearer token"}, headers=_CHALLENGE)
        try:
            principal = tokens.verify(credentials.credentials)
        except AuthError as exc:
            raise HTTPException(401, {"message": str(exc)}, headers=_CHALLENGE) from None
        log_context.bind(tenant_id=principal.tenant_id)
        return principal

    return current_principal
