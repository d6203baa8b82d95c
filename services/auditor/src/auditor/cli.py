"""``auditor verify``: check the hash chain of the audit log."""

from __future__ import annotations

import asyncio

import typer

from shared.db import open_pool
from shared.settings import DatabaseSettings

from .chain import ChainReport
from .repository import PostgresAuditLog

app = typer.Typer(help="Audit log tools.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Reads DATABASE_URL."""


@app.command()
def verify() -> None:
    """Recompute the chain; exit 1 and list the breaks if any row was altered or deleted."""
    report = asyncio.run(_verify())
    if report.ok:
        typer.echo(f"OK: {report.rows} rows, chain head {report.head_hash}")
        return
    typer.echo(f"BROKEN: {report.rows} rows checked", err=True)
    for problem in report.problems:
        typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(1)


async def _verify() -> ChainReport:
    pool = await open_pool(DatabaseSettings(), name="auditor-verify")
    try:
        return await PostgresAuditLog(pool).verify()
    finally:
        await pool.close()


if __name__ == "__main__":
    app()
