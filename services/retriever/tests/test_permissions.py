"""Permissions inside the query: L1 and other-tenant principals aim at L2-only and
other-tenant documents of the sample knowledge base and never get a forbidden chunk,
whether the answer is searched, served from the cache, or searched again after a re-ingest.

The oracle is computed here from the documents' front matter with the knowledge base's
written rules, independently of the retriever's own filter code.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import frontmatter
import pytest

from retriever.documents import discover, load_many
from retriever.embedding import HashingEmbedder
from retriever.engine import Engine, build_engine
from retriever.index.edge import EdgeChunkIndex
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.principal import Principal, StaffLevel

pytestmark = pytest.mark.integration

RANK = {"none": 0, "L1": 1, "L2": 2, "manager": 3}
CLEARANCE = {"none": "public", "L1": "internal", "L2": "confidential", "manager": "restricted"}
ORDER = ["public", "internal", "confidential", "restricted"]

PRINCIPALS = [
    Principal(user_id="l1", tenant_id="harborpine", roles=("support",), level=StaffLevel.L1),
    Principal(user_id="c", tenant_id="harborpine", roles=("customer",), level=StaffLevel.NONE),
    Principal(user_id="tw-l1", tenant_id="tidewell", roles=("support",), level=StaffLevel.L1),
    Principal(
        user_id="tw-m",
        tenant_id="tidewell",
        roles=("support", "management"),
        level=StaffLevel.MANAGER,
    ),
]


def allowed(meta: dict[str, object], p: Principal) -> bool:
    level = str(meta["min_level"])
    return (
        meta["tenant"] == p.tenant_id
        and bool(set(meta["allowed_roles"]) & set(p.roles))  # type: ignore[arg-type]
        and RANK[p.level.value] >= RANK[level]
        and ORDER.index(str(meta["classification"])) <= ORDER.index(CLEARANCE[p.level.value])
    )


def front_matter(kb: Path) -> dict[str, dict[str, object]]:
    out = {}
    for path in discover(kb):
        meta = frontmatter.load(str(path)).metadata
        out[str(meta["doc_id"])] = meta
    return out


def attack_queries(kb: Path, meta: dict[str, dict[str, object]]) -> list[str]:
    """Questions aimed at every L2-or-above document and at the other tenant's documents:
    their titles and section headings, plus the knowledge base's own forbidden questions."""
    targets = [d for d, m in meta.items() if RANK[str(m["min_level"])] >= 2] + [
        d for d in meta if d.startswith("tw-")
    ]
    queries = []
    for path in discover(kb):
        post = frontmatter.load(str(path))
        if post.metadata["doc_id"] in targets:
            queries.append(str(post.metadata["title"]))
            queries += [
                line.lstrip("# ").strip()
                for line in post.content.splitlines()
                if line.startswith("## ")
            ][:3]
    for line in (kb / "eval-questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "forbidden" in row["note"] or "cross-tenant" in row["note"]:
            queries.append(row["question"])
    return list(dict.fromkeys(queries))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, knowledge_base: Path) -> Iterator[Engine]:
    settings = RetrieverSettings(embedding=EmbeddingSettings(cache=False))
    index = EdgeChunkIndex(
        tmp_path_factory.mktemp("perm") / "index", dim=64, embedding_model="hashing"
    )
    engine = build_engine(settings, embedder=HashingEmbedder(), index=index)
    engine.ingestor.ingest(load_many(discover(knowledge_base), max_bytes=10**7))
    yield engine
    engine.close()


def test_no_forbidden_chunk_through_any_path(
    engine: Engine, knowledge_base: Path, tmp_path: Path
) -> None:
    meta = front_matter(knowledge_base)
    queries = attack_queries(knowledge_base, meta)
    assert len(queries) >= 50
    checked = 0

    def run(path: str, expect_cache_hit: bool) -> None:
        nonlocal checked
        for query, principal in itertools.product(queries, PRINCIPALS):
            retrieval = engine.retriever.retrieve(query, principal, 10)
            assert retrieval.cache_hit is expect_cache_hit, (path, query)
            for chunk in retrieval.result.chunks:
                doc = str(chunk.payload["doc_id"])
                assert allowed(meta[doc], principal), (
                    f"{path}: {principal.user_id} got {doc} for {query!r}"
                )
            checked += 1

    run("direct", expect_cache_hit=False)
    run("cached", expect_cache_hit=True)
    # Re-ingest changed versions of every forbidden target, then ask again: new index version,
    # so nothing comes from the cache, and the new chunks are filtered like the old ones.
    copies = tmp_path / "kb"
    for path in discover(knowledge_base):
        target = copies / path.relative_to(knowledge_base)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text() + "\n\n## Revision\n\nReviewed again this quarter.\n")
    report = engine.ingestor.ingest(load_many(discover(copies), max_bytes=10**7))
    assert len(report.indexed) == 39
    run("after re-ingest", expect_cache_hit=False)
    assert checked == 3 * len(queries) * len(PRINCIPALS)


def test_the_suite_can_fail(engine: Engine) -> None:
    """The same query does reach the L2 document for an L2 principal: the filter, not the
    ranking, keeps it from the others."""
    l2 = Principal(user_id="l2", tenant_id="harborpine", roles=("support",), level=StaffLevel.L2)
    docs = {
        c.payload["doc_id"]
        for c in engine.retriever.retrieve(
            "L2 Guide - Refund Exceptions and Goodwill Credits", l2, 10
        ).result.chunks
    }
    assert "hp-l2-refund-exceptions-goodwill" in docs
