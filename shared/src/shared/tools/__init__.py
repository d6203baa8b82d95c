"""The tool registry: what the agent may look up and what it may only propose.

Every tool declares a pydantic argument schema, a risk level (read / write / critical), a
timeout, a retry policy and the staff level required to request it. Read tools run during
the agent step; write and critical tools never run in the agent: they become drafts and
run in the approver's executor after approval, under an idempotency key.

The default implementations (``shared.tools.postgres``) keep tickets, orders, refunds and
accounts in the platform's own ``tools`` schema; a company plugs its real systems in by
registering other handlers under the same specs.
"""

from .postgres import default_registry
from .registry import (
    RetryPolicy,
    ToolArgumentError,
    ToolContext,
    ToolError,
    ToolInvariantError,
    ToolNotFound,
    ToolPermissionError,
    ToolRegistry,
    ToolResult,
    ToolSpec,
)

__all__ = [
    "RetryPolicy",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolInvariantError",
    "ToolNotFound",
    "ToolPermissionError",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "default_registry",
]
