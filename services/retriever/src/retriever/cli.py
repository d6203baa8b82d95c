"""``retriever``: ingest, list, delete and search documents, without the broker.

Works on the index configured by ``RETRIEVER_*`` (the embedded folder, or a Qdrant server).
The embedded index can be open in one process only: while the service runs, ingest through
it with ``--remote URL --token T`` (the same knowledge-admin rules apply).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from tqdm import tqdm

from shared.principal import Classification, Principal, StaffLevel

from .documents import discover, load_many
from .engine import build_engine
from .index import LayoutMismatch
from .settings import RetrieverSettings

app = typer.Typer(help="Knowledge ingestion and search.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Uses RETRIEVER_INDEX__PATH (or RETRIEVER_INDEX__QDRANT_URL) and RETRIEVER_EMBEDDING__*."""


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found.extend(discover(path) if path.is_dir() else [path])
    return found


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Files or folders.")],
    tenant: Annotated[str | None, typer.Option(help="Default tenant.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Default allowed role; repeat.")] = None,
    min_level: Annotated[StaffLevel | None, typer.Option(help="Default minimum level.")] = None,
    classification: Annotated[Classification | None, typer.Option()] = None,
    prune: Annotated[
        bool,
        typer.Option(
            help="Delete indexed documents not in PATHS; rebuilds an index of an older layout."
        ),
    ] = False,
    rebuild: Annotated[
        bool, typer.Option(help="Rebuild an index built with another model or layout.")
    ] = False,
    remote: Annotated[str | None, typer.Option(help="Retriever URL: upload instead.")] = None,
    token: Annotated[str | None, typer.Option(envvar="RETRIEVER_TOKEN")] = None,
) -> None:
    """Index documents (Markdown, HTML, text, PDF); unchanged ones are skipped by content hash.

    Access metadata comes from front matter, a ``<file>.meta.yaml`` sidecar, or the defaults
    given here. A file that cannot be read is reported by name and the rest still goes in."""
    defaults: dict[str, Any] = {
        k: v
        for k, v in {
            "tenant": tenant,
            "allowed_roles": role,
            "min_level": min_level,
            "classification": classification,
        }.items()
        if v
    }
    files = _files(paths)
    if remote:
        _upload(files, defaults, remote, token)
        return
    settings = RetrieverSettings()
    try:
        engine = build_engine(settings, rebuild=rebuild or prune)
    except LayoutMismatch as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with tqdm(total=len(files), unit="doc", desc="ingest", disable=None) as bar:
            report = engine.ingestor.ingest(
                load_many(files, defaults=defaults, max_bytes=settings.ingest.max_document_bytes),
                prune_missing=prune,
                progress=bar.update,
            )
    finally:
        engine.close()
    typer.echo(
        f"indexed {len(report.indexed)} documents ({report.chunks} chunks), "
        f"{len(report.unchanged)} unchanged, {len(report.deleted)} deleted, "
        f"{len(report.failed)} failed"
    )
    for error in report.failed.values():
        typer.echo(f"  failed: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)


def _upload(files: list[Path], defaults: dict[str, Any], url: str, token: str | None) -> None:
    if not token:
        typer.echo("error: --remote needs --token (or RETRIEVER_TOKEN)", err=True)
        raise typer.Exit(2)
    failed = 0
    form = {
        k: (v.value if hasattr(v, "value") else v) for k, v in defaults.items() if k != "tenant"
    }
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as client:
        for path in tqdm(files, unit="doc", desc="upload", disable=None):
            with path.open("rb") as fh:
                response = client.post(
                    "/v1/knowledge/documents", files={"file": (path.name, fh)}, data=form
                )
            if response.status_code >= 400:
                failed += 1
                typer.echo(f"  failed: {path}: {response.json().get('message')}", err=True)
    typer.echo(f"uploaded {len(files) - failed} documents, {failed} failed")
    if failed:
        raise typer.Exit(1)


@app.command()
def documents(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List indexed documents with their version and chunk count."""
    engine = build_engine(RetrieverSettings())
    try:
        found = engine.index.documents(tenant)
    finally:
        engine.close()
    for (doc_tenant, doc_id), doc in sorted(found.items()):
        typer.echo(
            f"{doc_tenant}/{doc_id}\t{doc.version}\t{doc.classification.value}\t{doc.chunks} chunks"
        )


@app.command()
def delete(
    doc_id: str, tenant: Annotated[str, typer.Option(help="Tenant of the document.")]
) -> None:
    """Delete a document and every chunk of it."""
    engine = build_engine(RetrieverSettings())
    try:
        removed = engine.ingestor.delete((tenant, doc_id))
    finally:
        engine.close()
    typer.echo(f"deleted {removed} chunks of {tenant}/{doc_id}")
    if not removed:
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
    engine = build_engine(RetrieverSettings())
    principal = Principal(
        user_id="cli", tenant_id=tenant, roles=tuple(role or ["customer"]), level=level
    )
    try:
        retrieval = engine.retriever.retrieve(query, principal, top_k)
    finally:
        engine.close()
    if retrieval.rejected:
        typer.echo(f"query refused: {retrieval.rejected}")
    for rank, chunk in enumerate(retrieval.result.chunks, 1):
        p = chunk.payload
        typer.echo(f"{rank}. [{chunk.score:.4f}] {p['doc_id']} › {' › '.join(p['section_path'])}")
    result = retrieval.result
    typer.echo(f"({result.latency_ms:.1f} ms, index {result.index_version})")


if __name__ == "__main__":
    app()
