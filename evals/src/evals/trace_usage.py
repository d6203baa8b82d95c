"""Tokens per request, from its trace in the span sink (``GET /traces/{trace_id}``).

Every model call of the agent is a ``chat`` span carrying ``gen_ai.provider.name``,
``gen_ai.request.model`` and ``gen_ai.usage.input_tokens`` / ``output_tokens`` (OpenTelemetry
GenAI conventions). Spans are exported in batches about a second after they end, so a trace
is read until the agent's ``invoke_agent`` span (which ends after all its model calls) is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from .pricing import ModelUsage

__all__ = ["collect_usage", "usage_of"]

_AGENT_SPAN = "invoke_agent"


def usage_of(spans: list[Mapping[str, Any]]) -> tuple[ModelUsage, ...]:
    """Tokens per (provider, model) over the ``chat`` spans of one trace."""
    totals: dict[tuple[str, str], list[int]] = {}
    for span in spans:
        attributes = span.get("attributes") or {}
        if attributes.get("gen_ai.operation.name") != "chat":
            continue
        key = (
            str(attributes.get("gen_ai.provider.name", "")),
            str(attributes.get("gen_ai.request.model", "")),
        )
        tokens = totals.setdefault(key, [0, 0])
        # OTLP JSON carries 64-bit integers as strings.
        tokens[0] += int(attributes.get("gen_ai.usage.input_tokens") or 0)
        tokens[1] += int(attributes.get("gen_ai.usage.output_tokens") or 0)
    return tuple(
        ModelUsage(provider, model, input_tokens, output_tokens)
        for (provider, model), (input_tokens, output_tokens) in sorted(totals.items())
    )


async def collect_usage(
    sink_url: str, trace_ids: Collection[str], *, timeout_s: float
) -> dict[str, tuple[ModelUsage, ...]]:
    """Usage of every trace whose agent span arrived within ``timeout_s``; the others are
    left out (the report says their tokens are unknown, not zero)."""
    found: dict[str, tuple[ModelUsage, ...]] = {}
    pending = set(trace_ids)
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(base_url=sink_url, timeout=10) as client:
        while pending:
            for trace_id in sorted(pending):
                try:
                    response = await client.get(f"/traces/{trace_id}")
                    response.raise_for_status()
                    spans = response.json().get("spans", [])
                except (httpx.HTTPError, ValueError):
                    continue
                if any(s.get("name") == _AGENT_SPAN for s in spans):
                    found[trace_id] = usage_of(spans)
                    pending.discard(trace_id)
            if not pending or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
    return found
