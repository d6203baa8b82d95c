"""The embedded index: qdrant-edge (Qdrant's engine, in process). The default adapter.

Measured on this machine: about 1 ms per filtered query at 50k points, where qdrant-client's
local mode needs about a second. One process at a time may open an index folder.
"""

from __future__ import annotations

import itertools
import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from .layout import IndexLayout, prepare_folder
from .port import (
    CANDIDATE_FIELDS,
    AccessScope,
    ChunkRecord,
    DocKey,
    Hit,
    IndexedDocument,
    SparseVec,
    Vectors,
    point_id,
)
from .records import check_chunks, documents_from_payloads

__all__ = ["EdgeChunkIndex"]

DENSE = "dense"
SENTENCES = "sentences"
SPARSE = "bm25"
_KEYWORD_FIELDS = ("doc_id", "allowed_roles", "min_level", "classification")
_SUMMARY_FIELDS = ["tenant_id", "doc_id", "doc_version", "classification", "min_level"]
_UPSERT_BATCH = 256


class EdgeChunkIndex:
    def __init__(
        self, path: Path | None, *, dim: int, embedding_model: str, rebuild: bool = False
    ) -> None:
        self._tmp: str | None = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="retriever-index-")
            path = Path(self._tmp)
        fresh = prepare_folder(path, IndexLayout(dim, embedding_model), rebuild=rebuild)
        config = qe.EdgeConfig(
            vectors={
                DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                SENTENCES: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                    # Sentences are only rescored for given candidates, never searched.
                    hnsw_config=qe.HnswIndexConfig(
                        m=0, ef_construct=100, full_scan_threshold=10_000
                    ),
                ),
            },
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        shard_dir = path / "shard"
        self._shard = (
            qe.EdgeShard.create(str(shard_dir), config)
            if fresh
            else qe.EdgeShard.load(str(shard_dir))
        )
        if fresh:
            self._shard.update(
                qe.UpdateOperation.create_field_index(
                    "tenant_id", qe.KeywordIndexParams(is_tenant=True)
                )
            )
            for name in _KEYWORD_FIELDS:
                self._shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.KeywordIndexParams())
                )
        # A writer holds the lock for a whole document replacement and a reader for each
        # query, so a replacement is atomic for every query of this process (the only one that
        # may open the folder).
        self._lock = threading.Lock()
        self._epoch = secrets.token_hex(4)
        self._changes = itertools.count(1)
        self._version = f"{self._epoch}-0"

    @property
    def version(self) -> str:
        return self._version

    def _bump(self) -> None:
        self._version = f"{self._epoch}-{next(self._changes)}"

    def replace_document(self, key: DocKey, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(key, chunks)
        points = [
            qe.Point(
                point_id(c.chunk_id),
                {
                    DENSE: c.dense.astype(np.float32).tolist(),
                    SENTENCES: c.sentences.astype(np.float32).tolist(),
                    SPARSE: qe.SparseVector(list(c.sparse.indices), list(c.sparse.values)),
                },
                c.payload(),
            )
            for c in chunks
        ]
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_doc_filter(key)))
            for start in range(0, len(points), _UPSERT_BATCH):
                batch = points[start : start + _UPSERT_BATCH]
                self._shard.update(qe.UpdateOperation.upsert_points(batch))
            self._bump()

    def delete_document(self, key: DocKey) -> int:
        with self._lock:
            removed = self._shard.count(qe.CountRequest(filter=_doc_filter(key), exact=True))
            if removed:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(_doc_filter(key)))
                self._bump()
        return int(removed)

    def documents(self, tenant_id: str | None = None) -> dict[DocKey, IndexedDocument]:
        tenant = (
            qe.Filter(must=[qe.FieldCondition("tenant_id", match=qe.MatchValue(tenant_id))])
            if tenant_id
            else None
        )
        payloads: list[dict[str, Any]] = []
        offset = None
        while True:
            with self._lock:
                points, offset = self._shard.scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=1024, filter=tenant, with_payload=_SUMMARY_FIELDS
                    )
                )
            payloads.extend(p.payload or {} for p in points)
            if offset is None:
                return documents_from_payloads(payloads)

    def search_dense(self, vector: Vectors, scope: AccessScope, limit: int) -> list[Hit]:
        query = qe.Query.Nearest(vector.astype(np.float32).tolist(), using=DENSE)
        return self._query(query, scope_filter(scope), limit)

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        sparse = qe.SparseVector(list(vector.indices), list(vector.values))
        return self._query(qe.Query.Nearest(sparse, using=SPARSE), scope_filter(scope), limit)

    def sentence_scores(
        self, vector: Vectors, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, float]:
        if not chunk_ids:
            return {}
        query = qe.Query.Nearest([vector.astype(np.float32).tolist()], using=SENTENCES)
        among = qe.Filter(
            must=[*_scope_conditions(scope), qe.HasIdCondition({point_id(c) for c in chunk_ids})]
        )
        hits = self._query(query, among, len(chunk_ids), payload=["chunk_id"])
        return {h.chunk_id: h.score for h in hits}

    def payloads(
        self, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, Mapping[str, Any]]:
        if not chunk_ids:
            return {}
        among = qe.Filter(
            must=[*_scope_conditions(scope), qe.HasIdCondition({point_id(c) for c in chunk_ids})]
        )
        with self._lock:
            points, _ = self._shard.scroll(
                qe.ScrollRequest(limit=len(chunk_ids), filter=among, with_payload=True)
            )
        return {str(p.payload["chunk_id"]): p.payload for p in points if p.payload}

    def _query(
        self,
        query: qe.Query,
        where: qe.Filter,
        limit: int,
        payload: list[str] = list(CANDIDATE_FIELDS),  # noqa: B006 - never mutated
    ) -> list[Hit]:
        request = qe.QueryRequest(limit=limit, query=query, filter=where, with_payload=payload)
        with self._lock:
            points = self._shard.query(request)
        return [
            Hit(str((p.payload or {})["chunk_id"]), float(p.score), p.payload or {}) for p in points
        ]

    def count(self) -> int:
        with self._lock:
            return int(self._shard.count(qe.CountRequest(exact=True)))

    def close(self) -> None:
        with self._lock:
            self._shard.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _doc_filter(key: DocKey) -> qe.Filter:
    tenant_id, doc_id = key
    return qe.Filter(
        must=[
            qe.FieldCondition("tenant_id", match=qe.MatchValue(tenant_id)),
            qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id)),
        ]
    )


def scope_filter(scope: AccessScope) -> qe.Filter:
    """The permission rule as an index filter: tenant, a shared role, level, classification."""
    return qe.Filter(must=_scope_conditions(scope))


def _scope_conditions(scope: AccessScope) -> list[qe.ConditionType]:
    return [
        qe.FieldCondition("tenant_id", match=qe.MatchValue(scope.tenant_id)),
        # MatchAny of nothing is rejected by the engine; a role no payload carries is not.
        qe.FieldCondition("allowed_roles", match=qe.MatchAny(list(scope.roles) or ["\x00"])),
        qe.FieldCondition("min_level", match=qe.MatchAny(list(scope.levels))),
        qe.FieldCondition("classification", match=qe.MatchAny(list(scope.classifications))),
    ]
