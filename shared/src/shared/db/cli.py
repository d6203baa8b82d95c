"""``platform-db``: create the database and apply migrations."""

from __future__ import annotations

import typer

from shared.settings import DatabaseSettings

from . import migrate

app = typer.Typer(help="Database schema management (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create the database if missing, then migrate it to REVISION."""
    dsn = DatabaseSettings().dsn
    if migrate.ensure_database(dsn):
        typer.echo("created database")
    migrate.upgrade(dsn, revision)
    typer.echo(f"migrated to {revision}")


@app.command()
def current() -> None:
    """Show the current revision."""
    migrate.current(DatabaseSettings().dsn)


if __name__ == "__main__":
    app()
