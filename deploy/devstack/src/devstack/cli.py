"""``devstack``: run the platform locally without Docker (``make up`` / ``make down``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import typer

from shared.auth import TokenService
from shared.settings import AuthSettings

from . import nginx
from .stack import DEPLOY, LocalStack, StackConfig
from .supervision import SupervisorError

app = typer.Typer(
    help="The local stack (broker, database, five services) under supervisord.",
    no_args_is_help=True,
)


@app.callback()
def _main() -> None:
    """State lives in .stack/ at the repository root."""


@app.command()
def up(
    timeout: float = typer.Option(240.0, help="Seconds to wait for health."),
    gateways: int | None = typer.Option(
        None,
        min=1,
        help="Gateway replicas (gateway-1 on 8001, gateway-N on 8010+N). Default: 1, or as"
        " many as the stack being recovered has.",
    ),
    edge: bool = typer.Option(
        True, help="nginx on 8080 (gateways) and 8081 (approver API) in front, as in compose."
    ),
    with_prometheus: bool = typer.Option(
        True,
        "--prometheus/--no-prometheus",
        help="Prometheus on 9090 scraping every program, with compose's alert rules.",
    ),
) -> None:
    """Start broker, database, topics, index and the five services; print how to use them.

    On a stack that is already (partly) up, start only what is missing.
    """
    stack = LocalStack(StackConfig(nginx=edge, prometheus=with_prometheus))
    if gateways is not None:
        if stack.recorded_layout is not None and stack.config.gateways != gateways:
            typer.echo(
                f"a stack with {stack.config.gateways} gateway replica(s) is up;"
                " run `make down` first to change GATEWAYS",
                err=True,
            )
            raise typer.Exit(1)
        stack.config.gateways = gateways
    recovering = stack.recorded_layout is not None
    print("Checking the local stack ..." if recovering else "Starting the local stack ...")
    try:
        actions = stack.up(timeout=timeout)
    except Exception as exc:
        typer.echo(f"\nstack failed to start: {exc}", err=True)
        if recovering:
            typer.echo("`make status` shows what runs; `make down` stops it all.", err=True)
        raise typer.Exit(1) from None
    if recovering:
        print("\nRecovered: " + ("; ".join(actions) if actions else "nothing was missing"))
    _summary(stack)


def _summary(stack: LocalStack) -> None:
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
    for name in [*stack.service_programs(), *stack.worker_programs()]:
        print(f"  {name:<10} {stack.url(name)}   ({stack.url(name)}/healthz, /metrics)")
    print(f"  traces     {stack.sink_url}/  (trace viewer; JSON: /traces/<trace_id>)")
    if stack.config.prometheus:
        print(
            f"  metrics    {stack.prometheus_url}/  (Prometheus: every /metrics, alerts at"
            f" {stack.prometheus_url}/alerts; dashboard queries: docs/observability.md)"
        )
    print(f"  API docs   {stack.url('gateway')}/docs")
    print(f"  logs       {stack.config.state_dir / 'logs'}/<program>.log (rotated)")
    if stack.config.nginx:
        print(
            f"  edge       {stack.edge_url} (nginx: the gateways),"
            f" {stack.approver_edge_url} (approver API)"
        )
    print("\nYour token (casey.customer, a customer of harborpine; development key, 8 h):")
    print(f"  export TOKEN={customer}")
    print("\nThen ask, as the README does:")
    print(
        f"  curl -s -X POST '{stack.url('gateway')}/v1/chat?wait=10' \\\n"
        '       -H "Authorization: Bearer $TOKEN" \\\n'
        "       -H 'Content-Type: application/json' \\\n"
        '       -d \'{"message": "How many days do I have to return an item?"}\''
    )
    print(
        "\nAn L1 support agent's token, for the approval inbox"
        f" ({stack.url('approver')}/inbox; a refund of up to 100 EUR needs one L1):"
    )
    print(f"  {agent}")
    print('  (others: make -s token ARGS="--user ana --role support --level L2")')
    print(
        "  make demo    # a few questions end to end;   make status   # programs, restarts,"
        " memory, health\n  make down    # stop everything"
    )


@app.command()
def down() -> None:
    """Stop exactly what `up` started."""
    LocalStack(StackConfig()).down()
    print("stopped")


@app.command()
def status() -> None:
    """Each program's state, pid, uptime, restarts, memory and health; non-zero if one is down.

    Restarts are the unexpected exits supervisord logged since the stack was started (it
    restarted each one).
    """
    lines, ok = status_report(LocalStack(StackConfig()))
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


def status_report(stack: LocalStack) -> tuple[list[str], bool]:
    """The lines `make status` prints, and whether everything is RUNNING and healthy."""
    if stack.recorded_layout is None:
        return [
            f"no stack is up (nothing recorded in {stack.state_file}); `make up` starts one"
        ], False
    try:
        programs = stack.programs()
    except SupervisorError as exc:
        return [f"supervisord is not running ({exc}); `make up` recovers the stack"], False
    health_urls = {
        name: stack.health_url(name)
        for name in (*stack.service_programs(), *stack.observability_programs())
    }
    health_urls["otlp-sink"] = f"{stack.sink_url}/healthz"
    ok = True
    lines = [
        f"{'program':<11} {'state':<9} {'pid':>7} {'uptime':>9} {'restarts':>8} {'rss':>8}  health"
    ]
    with httpx.Client(timeout=2.0) as client:
        for name in stack.program_names():
            info = programs.get(name)
            if info is None:
                lines.append(f"{name:<11} {'MISSING':<9}  (not in {stack.supervisor.conf_path})")
                ok = False
                continue
            health = "-"
            if name in health_urls:
                health, healthy = _health(client, health_urls[name])
                ok = ok and healthy
            ok = ok and info.state == "RUNNING"
            rss = stack.rss_bytes(name) if info.pid else 0
            lines.append(
                f"{name:<11} {info.state:<9} {info.pid or '-':>7} {_duration(info.uptime_s):>9}"
                f" {info.restarts:>8} {_megabytes(rss):>8}  {health}"
            )
    lines += [
        "",
        "restarts: unexpected exits supervisord logged since the stack started (each one was"
        f" restarted); logs in {stack.supervisor.logs_dir}",
    ]
    return lines, ok


def _health(client: httpx.Client, url: str) -> tuple[str, bool]:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return f"down ({type(exc).__name__})", False
    try:
        body = json.dumps(response.json(), separators=(",", ":"))
    except ValueError:
        body = response.text[:80]
    return f"{response.status_code} {body}", response.status_code == 200


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB" if size else "-"


@app.command()
def token(
    user: str = typer.Option("casey.customer", help="User id (the token's subject)."),
    tenant: str = typer.Option("harborpine"),
    role: list[str] = typer.Option(["customer"], help="Repeat for several roles."),  # noqa: B008
    level: str = typer.Option("none", help="Staff level: none (customer), L1, L2, manager."),
    ttl_s: int = typer.Option(8 * 3600, help="Lifetime in seconds."),
) -> None:
    """Print a development token (signed with the development key; refused in production).

    Default: casey.customer, a customer of harborpine, the one the README's examples use.
    """
    print(
        TokenService(AuthSettings()).mint(
            user_id=user, tenant_id=tenant, roles=role, level=level, ttl_s=ttl_s
        )
    )


@app.command("nginx-conf")
def nginx_conf(
    output: Path = typer.Option(DEPLOY / "nginx" / "nginx.conf", help="Where to write it."),  # noqa: B008
) -> None:
    """Write compose's nginx configuration (deploy/nginx/nginx.conf) from devstack.nginx."""
    output.write_text(nginx.render(nginx.compose_config()))
    print(f"wrote {output}")


@app.command()
def demo() -> None:
    """Send the demo questions through the running stack and print what comes back."""
    from .demo import run

    raise typer.Exit(run(LocalStack(StackConfig())))


if __name__ == "__main__":
    app()
