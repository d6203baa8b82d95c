"""``platform-token mint``: development tokens for curl, the demo and tests."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.principal import StaffLevel
from shared.settings import AuthSettings

from .tokens import TokenService

app = typer.Typer(help="Mint development tokens.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Tokens are signed with the key in AUTH_* settings (the dev secret by default)."""


@app.command()
def mint(
    user: Annotated[str, typer.Option(help="User id (sub).")],
    tenant: Annotated[str, typer.Option(help="Tenant id.")] = "harborpine",
    role: Annotated[list[str] | None, typer.Option(help="Role; repeat for several.")] = None,
    level: Annotated[StaffLevel, typer.Option(help="Staff level.")] = StaffLevel.NONE,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print a signed token for USER."""
    token = TokenService(AuthSettings()).mint(
        user_id=user, tenant_id=tenant, roles=role or ["customer"], level=level, ttl_s=ttl
    )
    typer.echo(token)


if __name__ == "__main__":
    app()
