"""``trace REQUEST_ID``: one saga as a timeline, from the audit log and its trace.

The audit log (PostgreSQL) names every step of the request and the trace ids it ran under
(the saga's, and the human decision's own trace, which links to it). The spans of those
traces, read from the local span sink or trace viewer (``--traces``, ``GET /traces/{id}``),
give each step's service and duration and the GenAI facts: model, tokens, cost, cache hits.
Without a reachable span store the timeline is the audit steps alone, with their offsets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
import typer

from shared.db import Pool, open_pool
from shared.settings import DatabaseSettings

__all__ = ["AuditStep", "Row", "audit_steps", "render", "rows_of"]

app = typer.Typer(help="Show one request's saga as a timeline.", no_args_is_help=True)


@dataclass(frozen=True)
class AuditStep:
    at: datetime
    service: str
    action: str
    outcome: str
    trace_id: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    offset_ms: float
    duration_ms: float | None
    depth: int
    service: str
    step: str
    outcome: str
    model: str = ""
    tokens: str = ""
    cost: str = ""
    cache: str = ""


async def audit_steps(pool: Pool, request_id: uuid.UUID) -> list[AuditStep]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT occurred_at, service, action, outcome, trace_id, details"
            " FROM audit.records WHERE request_id = %s ORDER BY occurred_at, seq",
            (request_id,),
        )
        return [
            AuditStep(
                r["occurred_at"],
                r["service"],
                r["action"],
                r["outcome"],
                r["trace_id"],
                r["details"] or {},
            )
            for r in await cur.fetchall()
        ]


def _attr(span: Mapping[str, Any], name: str) -> Any:
    return (span.get("attributes") or {}).get(name)


def _cache_facts(span: Mapping[str, Any]) -> str:
    facts = []
    for attribute, label in (
        ("retrieval.cache_hit", "retrieval"),
        ("retrieval.embedding_cache_hit", "embedding"),
        ("platform.answer_cache_hit", "answer"),
    ):
        value = _attr(span, attribute)
        if value is not None:
            facts.append(f"{label}:{'hit' if value in (True, 'true') else 'miss'}")
    return " ".join(facts)


def _depths(spans: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    parent = {s["span_id"]: s.get("parent_span_id") for s in spans}
    depths: dict[str, int] = {}
    for span_id in parent:
        depth, seen, node = 0, set(), parent[span_id]
        while node in parent and node not in seen:  # a parent outside the trace ends it
            seen.add(node)
            depth += 1
            node = parent[node]
        depths[span_id] = depth
    return depths


def rows_of(
    steps: Sequence[AuditStep], spans: Sequence[Mapping[str, Any]], *, price: str = ""
) -> list[Row]:
    """Spans as timeline rows when there are any, the audit steps otherwise."""
    if spans:
        ordered = sorted(spans, key=lambda s: int(s["start_ns"]))
        t0 = int(ordered[0]["start_ns"])
        depths = _depths(ordered)
        rows = []
        for s in ordered:
            start, end = int(s["start_ns"]), int(s["end_ns"])
            tokens_in = _attr(s, "gen_ai.usage.input_tokens")
            tokens_out = _attr(s, "gen_ai.usage.output_tokens")
            cost = _attr(s, "platform.cost_usd")
            status = (s.get("status") or {}).get("code", "")
            rows.append(
                Row(
                    offset_ms=(start - t0) / 1e6,
                    duration_ms=(end - start) / 1e6,
                    depth=depths.get(s["span_id"], 0),
                    service=str(s.get("service") or ""),
                    step=str(s["name"]),
                    outcome="error"
                    if "ERROR" in str(status)
                    else str(_attr(s, "draft.kind") or _attr(s, "approval.decision") or "ok"),
                    model=str(_attr(s, "gen_ai.request.model") or ""),
                    tokens=f"{tokens_in or 0}/{tokens_out or 0}"
                    if tokens_in is not None or tokens_out is not None
                    else "",
                    cost=f"${float(cost):.6f}" if cost is not None else "",
                    cache=_cache_facts(s),
                )
            )
        return rows
    if not steps:
        return []
    first = steps[0].at
    audit_rows = []
    for i, step in enumerate(steps):
        nxt = steps[i + 1].at if i + 1 < len(steps) else None
        details = step.details
        cost = details.get("cost_usd")
        cache = []
        if "cache_hit" in details:
            cache.append(f"retrieval:{'hit' if details['cache_hit'] else 'miss'}")
        if "served_from_cache" in details:
            cache.append(f"answer:{'hit' if details['served_from_cache'] else 'miss'}")
        tokens = ""
        if isinstance(details.get("cost"), list):
            tin = sum(int(c.get("input_tokens", 0)) for c in details["cost"])
            tout = sum(int(c.get("output_tokens", 0)) for c in details["cost"])
            tokens = f"{tin}/{tout}"
        audit_rows.append(
            Row(
                offset_ms=(step.at - first).total_seconds() * 1000,
                duration_ms=(nxt - step.at).total_seconds() * 1000 if nxt else None,
                depth=0,
                service=step.service,
                step=step.action,
                outcome=step.outcome,
                model=str(details.get("model") or ""),
                tokens=tokens,
                cost=f"${float(cost):.6f}" if cost is not None else "",
                cache=" ".join(cache),
            )
        )
    return audit_rows


def render(rows: Sequence[Row], steps: Sequence[AuditStep]) -> str:
    head = (
        f"{'+ms':>9} {'dur ms':>9}  {'service':<10} {'step':<38} {'outcome':<16}"
        f" {'model':<18} {'tokens':>11} {'cost':>11}  cache"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        duration = f"{r.duration_ms:9.1f}" if r.duration_ms is not None else f"{'':>9}"
        step = ("  " * r.depth + r.step)[:38]
        lines.append(
            f"{r.offset_ms:9.1f} {duration}  {r.service[:10]:<10} {step:<38} {r.outcome[:16]:<16}"
            f" {r.model[:18]:<18} {r.tokens:>11} {r.cost:>11}  {r.cache}"
        )
    produced = [s for s in steps if s.action == "draft.produced"]
    if produced:
        d = produced[-1].details
        usd = float(d.get("cost_usd") or 0)
        lines.append(
            f"draft: {d.get('kind')} by {d.get('model')}, cost ${usd:.6f},"
            f" served from cache: {bool(d.get('served_from_cache'))}"
        )
    last = steps[-1] if steps else None
    if last is not None:
        lines.append(f"last step: {last.service} {last.action} ({last.outcome})")
    return "\n".join(lines)


async def fetch_spans(base_url: str, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        for trace_id in trace_ids:
            try:
                response = await client.get(f"/traces/{trace_id}")
                response.raise_for_status()
                spans.extend(response.json().get("spans", []))
            except (httpx.HTTPError, ValueError):
                continue
    return spans


@app.command()
def show(
    request_id: Annotated[str, typer.Argument(help="The request's id (a UUID).")],
    traces: Annotated[
        str,
        typer.Option(
            envvar="TRACE_STORE_URL",
            help="Span store serving GET /traces/{trace_id} (the local stack's span sink).",
        ),
    ] = "http://127.0.0.1:4318",
) -> None:
    """Print the saga of REQUEST_ID as a timeline (reads DATABASE_URL)."""
    try:
        rid = uuid.UUID(request_id)
    except ValueError:
        raise typer.BadParameter(f"{request_id!r} is not a request id (UUID)") from None

    async def run() -> tuple[list[AuditStep], list[dict[str, Any]]]:
        pool = await open_pool(DatabaseSettings(), name="trace")
        try:
            steps = await audit_steps(pool, rid)
        finally:
            await pool.close()
        ids = list(dict.fromkeys(s.trace_id for s in steps if s.trace_id))
        return steps, await fetch_spans(traces, ids)

    steps, spans = asyncio.run(run())
    if not steps:
        typer.echo(f"no audit records for request {rid}", err=True)
        raise typer.Exit(1)
    source = f"{len(spans)} spans from {traces}" if spans else "audit log only (no spans found)"
    typer.echo(f"request {rid}: {len(steps)} audit steps, {source}")
    typer.echo(render(rows_of(steps, spans), steps))
