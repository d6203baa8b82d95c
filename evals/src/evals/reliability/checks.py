"""What must hold after the faults: read from PostgreSQL and the auditor's own verifier."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from approver.postgres.reconcile import effect_violations

__all__ = [
    "audit_verify",
    "backlog_drained",
    "effects",
    "l2_leaks",
    "l2_only_documents",
    "requests_without_end",
]

_FRONT_MATTER = re.compile(r"^---\n(.*?)\n---", re.DOTALL)


def l2_only_documents(knowledge_base: Path) -> set[str]:
    """Documents an L1 may not read (min_level L2 or manager), from their front matter."""
    found = set()
    for path in knowledge_base.rglob("*.md"):
        match = _FRONT_MATTER.match(path.read_text())
        if match is None:
            continue
        meta = dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
        if meta.get("min_level", "").strip() in ("L2", "manager"):
            found.add(meta["doc_id"].strip())
    return found


async def requests_without_end(dsn: str, terminal: Iterable[str]) -> dict[str, int]:
    """Requests the gateway knows that have not reached an end, by status (all of them)."""
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT status, count(*) AS n FROM gateway.requests"
            " WHERE NOT (status = ANY(%s)) GROUP BY status",
            (sorted(terminal),),
        )
        return {r["status"]: r["n"] for r in await cur.fetchall()}


async def backlog_drained(dsn: str, *, older_than_s: float = 5.0) -> bool:
    """No request has waited longer than ``older_than_s`` for the retriever or the agent."""
    try:
        async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=2) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM gateway.requests WHERE status IN ('accepted', 'retrieved')"
                " AND created_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
            row = await cur.fetchone()
    except psycopg.OperationalError:
        return False
    return row is not None and row[0] == 0


async def effects(dsn: str) -> dict[str, Any]:
    """Effects against approvals (``approver.postgres.reconcile``), and how many there were."""
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        problems = await effect_violations(conn)
        cur = await conn.execute(
            "SELECT status, count(*) AS n FROM approvals.drafts GROUP BY status ORDER BY status"
        )
        approvals = {r["status"]: r["n"] for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM tools.refunds) AS refunds,"
            " (SELECT count(*) FROM tools.tickets) AS tickets,"
            " (SELECT count(*) FROM tools.password_resets) AS resets,"
            " (SELECT count(*) FROM tools.escalations) AS escalations"
        )
        counts = await cur.fetchone()
    return {"violations": problems, "approvals": approvals, "effects": dict(counts or {})}


async def l2_leaks(dsn: str, l1_users: Iterable[str], l2_docs: set[str]) -> list[str]:
    """Retrievals or citations of L2-only documents for requests made by L1 staff."""
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT a.request_id, a.details FROM audit.records a"
            " WHERE a.action = 'retrieval.completed' AND a.actor = ANY(%s)",
            (sorted(l1_users),),
        )
        leaks = [
            f"{r['request_id']} retrieved {sorted(set(r['details'].get('doc_ids', [])) & l2_docs)}"
            for r in await cur.fetchall()
            if set(r["details"].get("doc_ids", [])) & l2_docs
        ]
        cur = await conn.execute(
            "SELECT request_id, result FROM gateway.requests"
            " WHERE user_id = ANY(%s) AND result IS NOT NULL",
            (sorted(l1_users),),
        )
        for r in await cur.fetchall():
            cited = {c.get("doc_id") for c in (r["result"] or {}).get("citations") or []}
            if cited & l2_docs:
                leaks.append(f"{r['request_id']} cited {sorted(cited & l2_docs)}")
    return leaks


def audit_verify(dsn: str, *, lag_s: int = 5) -> dict[str, Any]:
    """``auditor verify --json``: the chain's integrity and every settled saga's steps."""
    run = subprocess.run(
        [sys.executable, "-m", "auditor.cli", "verify", "--json", "--lag", str(lag_s)],
        env={**os.environ, "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(run.stdout)
    except ValueError:
        report = {"raw": run.stdout[-2000:], "stderr": run.stderr[-2000:]}
    report["exit_code"] = run.returncode
    return report
