"""``cost report --by tenant|model|day [--since 7d]``: what requests cost, from PostgreSQL.

Reads ``audit.request_costs`` (migration 0008), the cost items the agent recorded on each
``draft.produced`` step. Requests are counted once per group even when several models spent
tokens on them; ``cached`` counts those answered from the safe-answer cache.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer

from shared.db import Pool, open_pool
from shared.settings import DatabaseSettings

from .verification import parse_since

__all__ = ["CostRow", "Grouping", "cost_rows"]

app = typer.Typer(help="Cost of requests, from the audit log.", no_args_is_help=True)


class Grouping(StrEnum):
    TENANT = "tenant"
    MODEL = "model"
    DAY = "day"


_GROUP_SQL = {
    Grouping.TENANT: "tenant_id",
    Grouping.MODEL: "COALESCE(model, '(none)')",
    Grouping.DAY: "to_char(date_trunc('day', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
}


@dataclass(frozen=True)
class CostRow:
    key: str
    requests: int
    cached: int
    input_tokens: int
    output_tokens: int
    usd: float


async def cost_rows(pool: Pool, by: Grouping, since: datetime | None) -> list[CostRow]:
    group = _GROUP_SQL[by]  # from a fixed table, never from input
    query = f"""
        SELECT {group} AS key,
               count(DISTINCT request_id) AS requests,
               count(DISTINCT request_id) FILTER (WHERE served_from_cache) AS cached,
               COALESCE(sum(input_tokens), 0) AS input_tokens,
               COALESCE(sum(output_tokens), 0) AS output_tokens,
               COALESCE(sum(usd), 0) AS usd
          FROM audit.request_costs
         WHERE (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
         GROUP BY 1
         ORDER BY usd DESC, key
    """  # noqa: S608 - the group expression comes from _GROUP_SQL
    async with pool.connection() as conn:
        cur = await conn.execute(query, {"since": since})
        rows = await cur.fetchall()
    return [
        CostRow(
            key=str(r["key"]),
            requests=int(r["requests"]),
            cached=int(r["cached"]),
            input_tokens=int(r["input_tokens"]),
            output_tokens=int(r["output_tokens"]),
            usd=float(r["usd"]),
        )
        for r in rows
    ]


def render(rows: list[CostRow], by: Grouping) -> str:
    header = (
        f"{by.value:<28} {'requests':>9} {'cached':>7} {'in tok':>10} {'out tok':>9} {'USD':>12}"
    )
    lines = [header, "-" * len(header)]
    lines += [
        f"{r.key[:28]:<28} {r.requests:>9} {r.cached:>7} {r.input_tokens:>10}"
        f" {r.output_tokens:>9} {r.usd:>12.6f}"
        for r in rows
    ]
    total = sum(r.usd for r in rows)
    lines.append(f"{'total':<28} {'':>9} {'':>7} {'':>10} {'':>9} {total:>12.6f}")
    return "\n".join(lines)


@app.callback()
def _main() -> None:
    """Reads DATABASE_URL."""


@app.command()
def report(
    by: Annotated[Grouping, typer.Option(help="Group by tenant, model or day (UTC).")] = (
        Grouping.TENANT
    ),
    since: Annotated[
        str | None,
        typer.Option(help="Only requests since then: 24h, 7d, or an ISO-8601 time."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """Cost of requests, grouped, from the audit log."""
    try:
        start = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    async def run() -> list[CostRow]:
        pool = await open_pool(DatabaseSettings(), name="cost-report")
        try:
            return await cost_rows(pool, by, start)
        finally:
            await pool.close()

    rows = asyncio.run(run())
    if as_json:
        for row in rows:
            typer.echo(json.dumps(asdict(row)))
    else:
        typer.echo(render(rows, by))
