"""``platform.tool.duration`` (``platform_tool_duration_seconds{tool, outcome}``).

One histogram for every tool call wherever it runs: read tools in the agent, write tools in
the approver's executor. Its ``_count`` is the number of calls. ``outcome`` is ``ok``,
``failed`` (the tool ran and failed, or timed out) or ``refused`` (a guard stopped it before
it ran: unknown, forbidden, invalid arguments, rate limit, ...). ``tool`` is a registered
tool's name; any other name (a model or an MCP client can ask for anything) counts as
``unknown``, so the label stays bounded.
"""

from __future__ import annotations

from typing import Literal

from opentelemetry import metrics

from .registry import ToolRegistry

__all__ = ["ToolMetrics", "ToolOutcome"]

ToolOutcome = Literal["ok", "failed", "refused"]

#: Seconds: a lookup takes milliseconds, a write to a company's system can take seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ToolMetrics:
    def __init__(self, meter: metrics.Meter, registry: ToolRegistry) -> None:
        self._known = frozenset(spec.name for spec in registry.specs())
        self._duration = meter.create_histogram(
            "platform.tool.duration",
            unit="s",
            description="Tool calls and their duration, by tool and outcome (ok, failed, refused).",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def tool_label(self, name: str) -> str:
        return name if name in self._known else "unknown"

    def record(self, tool: str, outcome: ToolOutcome, seconds: float) -> None:
        self._duration.record(
            max(0.0, seconds), {"tool": self.tool_label(tool), "outcome": outcome}
        )
