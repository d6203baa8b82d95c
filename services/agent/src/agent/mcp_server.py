"""The tool registry as an MCP server (streamable HTTP), hosted on the agent's HTTP port.

An MCP client authenticates with the platform's bearer token (the same JWT the gateway
accepts); the token's principal is who calls. Listing shows the tools that principal may
request; every call goes through the same :class:`~agent.toolgate.ToolGateway` as the agent
loop, so the same guardrails, rate limits and audit apply. A write tool called over MCP is
not executed: it becomes an action draft on the ``draft`` topic, pending approval, and the
result says so.

The server is stateless (no MCP session kept between requests), so any agent replica can
answer any request behind a load balancer.
"""

from __future__ import annotations

import json
import uuid
from contextlib import AsyncExitStack
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from shared import log_context
from shared.auth import AuthError, TokenService
from shared.contracts import (
    ChatRequested,
    DraftKind,
    DraftProduced,
    ProposedAction,
    Topic,
    derive_event_id,
)
from shared.messaging import EventPublisher
from shared.principal import Principal

from .audit import AuditTrail
from .settings import McpSettings
from .toolgate import ToolGateway, ToolRequest, describe_action

__all__ = ["McpToolServer", "PlatformTokenVerifier"]


class PlatformTokenVerifier:
    """MCP ``TokenVerifier`` over the platform's JWTs: no token, no principal, no access."""

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            principal = self._tokens.verify(token)
        except AuthError:
            return None
        return AccessToken(
            token=token,
            client_id=principal.user_id,
            subject=principal.user_id,
            scopes=[],
            claims={"principal": principal.model_dump(mode="json")},
        )


def _principal() -> Principal:
    access = get_access_token()
    if access is None or not access.claims:  # the auth middleware lets no such request in
        raise PermissionError("unauthenticated MCP request")
    return Principal.model_validate(access.claims["principal"])


class McpToolServer:
    def __init__(
        self, tools: ToolGateway, bus: EventPublisher, settings: McpSettings, tokens: TokenService
    ) -> None:
        self._tools = tools
        self._bus = bus
        self._settings = settings
        self._server: Server[Any] = Server(
            "support-platform-tools",
            instructions="Support tools. Read tools answer now; write tools create a draft "
            "that a person approves before anything changes.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self._lifetime = AsyncExitStack()
        #: The Starlette app serving ``settings.path``; mount it on the service's app.
        self.app: Starlette = self._server.streamable_http_app(
            streamable_http_path=self._settings.path,
            stateless_http=True,
            json_response=True,
            auth=AuthSettings(
                issuer_url="http://support-platform.invalid",  # tokens are verified locally
                resource_server_url=None,
            ),
            token_verifier=PlatformTokenVerifier(tokens),
            transport_security=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=list(settings.allowed_hosts),
                allowed_origins=[f"http://{h}" for h in settings.allowed_hosts],
            ),
        )

    async def start(self) -> None:
        """The session manager's task group lives as long as the service."""
        await self._lifetime.enter_async_context(self._server.session_manager.run())

    async def stop(self) -> None:
        await self._lifetime.aclose()

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal = _principal()
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    description=f"[{tool.risk.value}] {tool.description}",
                    input_schema=tool.parameters,
                )
                for tool in self._tools.descriptors(principal)
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal = _principal()
        request_id = uuid.uuid4()
        # The session manager runs calls in tasks of its own, outside the HTTP request's log
        # scope: each call is a saga of its own and gets one.
        with log_context.scope(
            service=self._bus.service, request_id=request_id, tenant_id=principal.tenant_id
        ):
            return await self._call_in_scope(principal, request_id, params)

    async def _call_in_scope(
        self, principal: Principal, request_id: uuid.UUID, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        trail = AuditTrail(
            self._bus,
            request_id=request_id,
            tenant_id=principal.tenant_id,
            actor=principal.user_id,
            anchor=str(request_id),
        )
        outcome = await self._tools.call(
            ToolRequest(
                name=params.name,
                arguments=dict(params.arguments or {}),
                principal=principal,
                request_id=str(request_id),
                origin="mcp",
            ),
            trail,
        )
        payload: dict[str, Any] = {
            "result": outcome.data,
            "status": outcome.status,
            "request_id": str(request_id),
        }
        if outcome.action is not None:
            draft = self._draft(request_id, principal, outcome.action)
            await self._bus.publish(Topic.DRAFT, draft)
            trail.record(
                "draft.produced",
                subject_event_id=draft.event_id,
                details={"kind": draft.kind.value, "tool": outcome.action.tool, "origin": "mcp"},
            )
            payload["draft_event_id"] = str(draft.event_id)
        await trail.flush()
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(payload, default=str))],
            structured_content=payload,
            is_error=not outcome.ok,
        )

    @staticmethod
    def _draft(
        request_id: uuid.UUID, principal: Principal, action: ProposedAction
    ) -> DraftProduced:
        described = describe_action(action.tool, action.arguments)
        request = ChatRequested(
            request_id=request_id,
            tenant_id=principal.tenant_id,
            principal=principal,
            message=f"MCP tool call: {described}",
            channel="mcp",
        )
        return DraftProduced(
            event_id=derive_event_id(request_id, "draft"),
            request_id=request_id,
            tenant_id=principal.tenant_id,
            request=request,
            kind=DraftKind.ACTION,
            answer=f"Prepared for approval: {described}.",
            action=action,
            model="mcp-client",
            # No retrieval happened: the id names the MCP call this draft came from.
            retrieved_event_id=derive_event_id(request_id, "mcp-call"),
        )
