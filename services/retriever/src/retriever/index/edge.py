"""The embedded index: qdrant-edge (Qdrant's engine, in process).

Measured on this machine: about 1 ms per filtered query at 50k points, where qdrant-client's
local mode needs about a second. One process at a time may open an index folder.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import qdrant_edge as qe

from .port import AccessScope, ChunkRecord, Hit, SparseVec, point_id

__all__ = ["EdgeChunkIndex"]

DENSE = "dense"
SPARSE = "bm25"
_KEYWORD_FIELDS = ("doc_id", "allowed_roles", "min_level", "classification")


class EdgeChunkIndex:
    def __init__(self, path: Path | None, *, dim: int) -> None:
        self._tmp: str | None = None
        if path is None:
            self._tmp = tempfile.mkdtemp(prefix="retriever-index-")
            path = Path(self._tmp)
        path.mkdir(parents=True, exist_ok=True)
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        fresh = not any(path.iterdir())
        self._shard = (
            qe.EdgeShard.create(str(path), config) if fresh else qe.EdgeShard.load(str(path))
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
        # Writers take the lock for a whole document replacement and readers for each query,
        # which makes a replacement atomic for every query of this process (the only one that
        # may open the folder).
        self._lock = threading.Lock()
        self._epoch = f"{np.random.default_rng().integers(1 << 32):08x}"
        self._changes = itertools.count(1)
        self._version = f"{self._epoch}-0"

    @property
    def version(self) -> str:
        return self._version

    def _bump(self) -> None:
        self._version = f"{self._epoch}-{next(self._changes)}"

    def replace_document(self, doc_id: str, chunks: Sequence[ChunkRecord]) -> None:
        points = [
            qe.Point(
                point_id(c.chunk_id),
                {
                    DENSE: c.dense.astype(np.float32).tolist(),
                    SPARSE: qe.SparseVector(list(c.sparse.indices), list(c.sparse.values)),
                },
                c.payload(),
            )
            for c in chunks
        ]
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_doc_filter(doc_id)))
            for start in range(0, len(points), 256):
                self._shard.update(qe.UpdateOperation.upsert_points(points[start : start + 256]))
            self._bump()

    def delete_document(self, doc_id: str) -> int:
        with self._lock:
            removed = self._shard.count(qe.CountRequest(filter=_doc_filter(doc_id), exact=True))
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(_doc_filter(doc_id)))
            self._bump()
        return int(removed)

    def document_versions(self) -> dict[str, str]:
        versions: dict[str, str] = {}
        offset = None
        while True:
            with self._lock:
                points, offset = self._shard.scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=1024, with_payload=["doc_id", "doc_version"]
                    )
                )
            for p in points:
                payload = p.payload or {}
                versions[str(payload["doc_id"])] = str(payload["doc_version"])
            if offset is None:
                return versions

    def search_dense(
        self, vector: npt.NDArray[np.float32], scope: AccessScope, limit: int
    ) -> list[Hit]:
        return self._query(qe.Query.Nearest(vector.tolist(), using=DENSE), scope, limit)

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        sparse = qe.SparseVector(list(vector.indices), list(vector.values))
        return self._query(qe.Query.Nearest(sparse, using=SPARSE), scope, limit)

    def _query(self, query: qe.Query, scope: AccessScope, limit: int) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit, query=query, filter=scope_filter(scope), with_payload=True
        )
        with self._lock:
            points = self._shard.query(request)
        return [Hit(payload=p.payload or {}, score=float(p.score)) for p in points]

    def count(self) -> int:
        with self._lock:
            return int(self._shard.count(qe.CountRequest(exact=True)))

    def close(self) -> None:
        with self._lock:
            self._shard.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _doc_filter(doc_id: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id))])


def scope_filter(scope: AccessScope) -> qe.Filter:
    """The permission rule as an index filter: tenant, a shared role, level, classification."""
    return qe.Filter(
        must=[
            qe.FieldCondition("tenant_id", match=qe.MatchValue(scope.tenant_id)),
            qe.FieldCondition("allowed_roles", match=qe.MatchAny(list(scope.roles) or ["\x00"])),
            qe.FieldCondition("min_level", match=qe.MatchAny(list(scope.levels))),
            qe.FieldCondition("classification", match=qe.MatchAny(list(scope.classifications))),
        ]
    )
