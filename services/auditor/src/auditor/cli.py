"""``auditor verify``: check that the audit log is intact *and* complete.

Intact: the hash chain holds, no row was altered or deleted (:mod:`auditor.chain`). Complete:
every settled request has the steps its path implies, and every step the gateway projected from
the audit topic is in the log (:mod:`auditor.completeness`). Exit 1 on any problem.

Run it on a schedule with ``--since`` a little longer than the interval (``--since 2h`` every
hour) to catch a loss while it is fresh, and without ``--since`` now and then (nightly) to
re-walk the whole chain.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated

import typer

from shared.db import open_pool
from shared.settings import DatabaseSettings

from .completeness import DEFAULT_LAG_S
from .verification import VerifyReport, parse_since, verify_log

app = typer.Typer(help="Audit log tools.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Reads DATABASE_URL."""


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def verify(
    since: Annotated[
        str | None,
        typer.Option(
            help="Only requests settled, steps projected and rows recorded since then: a"
            " duration (24h, 90m, 7d) or an ISO-8601 time. The chain is walked from the first"
            " row recorded since then, anchored at the row before it. Default: everything.",
        ),
    ] = None,
    lag: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds a step may take to reach the log: younger requests and projected"
            " steps are not checked yet.",
        ),
    ] = DEFAULT_LAG_S,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as JSON on stdout.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=1, help="Problems listed per kind (all are counted).")
    ] = 100,
) -> None:
    """Exit 1 and list the problems if a row was altered or deleted, a settled request lacks
    audit steps, or a step the gateway saw on the audit topic is not in the log."""
    report = asyncio.run(_verify(_since(since), lag, limit))
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    elif report.ok:
        typer.echo(report.summary())
    else:
        typer.echo("PROBLEMS: the audit log is not intact or not complete", err=True)
        for line in report.problems():
            typer.echo(line, err=True)
    if not report.ok:
        raise typer.Exit(1)


async def _verify(since: datetime | None, lag_s: float, limit: int) -> VerifyReport:
    pool = await open_pool(DatabaseSettings(), name="auditor-verify")
    try:
        return await verify_log(pool, since=since, lag_s=lag_s, limit=limit)
    finally:
        await pool.close()


if __name__ == "__main__":
    app()
