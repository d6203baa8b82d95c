"""Signed-token authentication (JWT) shared by every HTTP surface and the MCP server."""

from .tokens import AuthError, TokenService

__all__ = ["AuthError", "TokenService"]
