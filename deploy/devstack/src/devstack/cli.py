"""``devstack``: run the platform locally without Docker (``make up`` / ``make down``)."""

from __future__ import annotations

import json
import sys

import typer

from shared.auth import TokenService
from shared.settings import AuthSettings

from .stack import SERVICES, LocalStack, StackConfig

app = typer.Typer(help="The local stack (broker, database, five services).", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """State lives in .stack/ at the repository root."""


@app.command()
def up(timeout: float = typer.Option(240.0, help="Seconds to wait for health.")) -> None:
    """Start broker, database, topics, index and the five services; print how to use them."""
    stack = LocalStack(StackConfig())
    print("Starting the local stack ...")
    try:
        stack.up(timeout=timeout)
    except Exception as exc:
        typer.echo(f"\nstack failed to start: {exc}", err=True)
        raise typer.Exit(1) from None
    tokens = TokenService(AuthSettings())
    customer = tokens.mint(
        user_id="casey.customer",
        tenant_id="harborpine",
        roles=["customer"],
        level="none",
        ttl_s=8 * 3600,
    )
    agent = tokens.mint(
        user_id="lee.l1", tenant_id="harborpine", roles=["support"], level="L1", ttl_s=8 * 3600
    )
    print("\nAll services are healthy:")
    for service in SERVICES:
        print(f"  {service:<10} {stack.url(service)}   ({stack.url(service)}/healthz, /metrics)")
    print(f"  traces     {stack.sink_url}/traces/<trace_id>")
    print(f"  API docs   {stack.url('gateway')}/docs")
    print("\nTokens (development key, 8 h):")
    print(f"  customer  {customer}")
    print(f"  L1 agent  {agent}")
    print("\nTry:")
    print(
        f"  curl -s -X POST '{stack.url('gateway')}/v1/chat?wait=10' \\\n"
        "       -H 'Authorization: Bearer <customer token>' \\\n"
        "       -H 'Content-Type: application/json' \\\n"
        '       -d \'{"message": "How many days do I have to return an item?"}\''
    )
    print("  make demo    # a few questions end to end;   make down    # stop everything")


@app.command()
def down() -> None:
    """Stop exactly what `up` started."""
    LocalStack(StackConfig()).down()
    print("stopped")


@app.command()
def status() -> None:
    """Health of each service."""
    import httpx

    stack = LocalStack(StackConfig())
    ok = True
    for service in SERVICES:
        try:
            body = httpx.get(f"{stack.url(service)}/healthz", timeout=2).json()
        except Exception as exc:
            body, ok = {"status": f"down ({type(exc).__name__})"}, False
        print(f"{service:<10} {json.dumps(body)}")
    sys.exit(0 if ok else 1)


@app.command()
def token(
    user: str = typer.Option("lee.l1"),
    tenant: str = typer.Option("harborpine"),
    role: list[str] = typer.Option(["support"]),  # noqa: B008
    level: str = typer.Option("L1"),
) -> None:
    """Mint a development token."""
    print(
        TokenService(AuthSettings()).mint(user_id=user, tenant_id=tenant, roles=role, level=level)
    )


@app.command()
def demo() -> None:
    """Send the demo questions through the running stack and print what comes back."""
    from .demo import run

    raise typer.Exit(run(LocalStack(StackConfig())))


if __name__ == "__main__":
    app()
