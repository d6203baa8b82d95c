"""``retriever``: ingest documents into the index and try queries, without the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.principal import Principal, StaffLevel

from .engine import build_engine
from .settings import RetrieverSettings

app = typer.Typer(help="Knowledge ingestion and search.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Uses RETRIEVER_INDEX__PATH; the retriever service must not hold the index open."""


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Documents folder.")],
    prune: Annotated[
        bool, typer.Option(help="Delete indexed documents missing from FOLDER.")
    ] = False,
) -> None:
    """Index every document under FOLDER; unchanged documents are skipped."""
    engine = build_engine(RetrieverSettings())
    try:
        report = engine.ingestor.ingest_folder(folder, prune_missing=prune)
    finally:
        engine.close()
    typer.echo(
        f"indexed {len(report.indexed)} documents ({report.chunks} chunks), "
        f"{len(report.unchanged)} unchanged, {len(report.deleted)} deleted, "
        f"{len(report.failed)} failed"
    )
    for path, error in report.failed.items():
        typer.echo(f"  failed: {path}: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def search(
    query: str,
    tenant: Annotated[str, typer.Option()] = "harborpine",
    role: Annotated[list[str] | None, typer.Option()] = None,
    level: Annotated[StaffLevel, typer.Option()] = StaffLevel.NONE,
    top_k: Annotated[int, typer.Option()] = 5,
) -> None:
    """Run QUERY as a principal and print the permitted top chunks."""
    settings = RetrieverSettings()
    engine = build_engine(settings)
    principal = Principal(
        user_id="cli", tenant_id=tenant, roles=tuple(role or ["customer"]), level=level
    )
    try:
        result = engine.searcher.search(query, principal, top_k)
    finally:
        engine.close()
    for rank, chunk in enumerate(result.chunks, 1):
        p = chunk.payload
        typer.echo(f"{rank}. [{chunk.score:.4f}] {p['doc_id']} › {' › '.join(p['section_path'])}")
    typer.echo(f"({result.latency_ms:.1f} ms, index {result.index_version})")


if __name__ == "__main__":
    app()
