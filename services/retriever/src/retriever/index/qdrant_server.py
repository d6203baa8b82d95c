"""The Qdrant server through qdrant-client (used when ``RETRIEVER_INDEX__QDRANT_URL`` is set).

Qdrant has no multi-point transactions, and several retriever replicas may share one
collection, so a replacement is made atomic by visibility rather than by a lock alone:

1. the new version's points are written *staged* (every query filters on ``state = live``);
2. one filtered ``set_payload`` makes them live;
3. one filtered delete removes every other version of the document.

Between 2 and 3 both versions are live; every search therefore keeps, per document, only the
hits of the newest generation it saw, so no result ever mixes two versions, and since new
points go live before old ones leave, no moment shows neither. Within one process a lock
also serialises writers against readers, which makes the switch exact there.

No Qdrant server can run on the development machine: this adapter's contract tests run
against qdrant-client's local mode (``QdrantClient(location=":memory:")``), which implements
the same API in process (it ignores payload indexes and is slow with filters, ~1 s per query
at 50k points, so it is not an embedded option).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from .layout import LAYOUT_VERSION, LayoutMismatch
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

__all__ = ["QdrantChunkIndex"]

DENSE = "dense"
SENTENCES = "sentences"
SPARSE = "bm25"
LIVE = "live"
STAGED = "staged"
_META_ID = str(uuid.UUID(int=1))
_KEYWORDS = ("doc_id", "allowed_roles", "min_level", "classification", "state")
_SUMMARY_FIELDS = ["tenant_id", "doc_id", "doc_version", "classification", "min_level"]
_UPSERT_BATCH = 128


class QdrantChunkIndex:
    def __init__(
        self, client: QdrantClient, collection: str, *, dim: int, embedding_model: str
    ) -> None:
        self._client = client
        self._collection = collection
        self._layout = {"layout": LAYOUT_VERSION, "dim": dim, "embedding_model": embedding_model}
        self._lock = threading.Lock()
        self._generations = itertools.count(time.time_ns())
        if not client.collection_exists(collection):
            self._create(dim)
        self._check_layout()

    # ------------------------------------------------------------------ set-up
    def _create(self, dim: int) -> None:
        self._client.create_collection(
            self._collection,
            vectors_config={
                DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE),
                SENTENCES: models.VectorParams(
                    size=dim,
                    distance=models.Distance.COSINE,
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                    hnsw_config=models.HnswConfigDiff(m=0),  # rescored, never searched
                ),
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            # Local mode (tests) warns that it ignores payload indexes; the server uses them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            self._client.create_payload_index(
                self._collection,
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            for name in _KEYWORDS:
                self._client.create_payload_index(
                    self._collection, name, models.PayloadSchemaType.KEYWORD
                )
        self._set_meta({**self._layout, "index_version": uuid.uuid4().hex})

    def _meta(self) -> Mapping[str, Any]:
        found = self._client.retrieve(self._collection, [_META_ID], with_payload=True)
        return (found[0].payload or {}) if found else {}

    def _set_meta(self, payload: dict[str, Any]) -> None:
        self._client.upsert(
            self._collection,
            points=[models.PointStruct(id=_META_ID, vector={}, payload=payload)],
            wait=True,
        )

    def _check_layout(self) -> None:
        meta = self._meta()
        found = {k: meta.get(k) for k in self._layout}
        if found != self._layout:
            raise LayoutMismatch(
                f"collection {self._collection!r} was built with {found}, this configuration"
                f" needs {self._layout}: use another collection or rebuild it"
            )

    # ------------------------------------------------------------------ writes
    @property
    def version(self) -> str:
        # Read from the collection: another replica (or the CLI) may have changed it.
        return str(self._meta().get("index_version", ""))

    def _bump(self) -> None:
        self._client.set_payload(
            self._collection, {"index_version": uuid.uuid4().hex}, points=[_META_ID], wait=True
        )

    def replace_document(self, key: DocKey, chunks: Sequence[ChunkRecord]) -> None:
        check_chunks(key, chunks)
        generation = next(self._generations)
        points = [
            models.PointStruct(
                id=point_id(c.chunk_id),
                vector={
                    DENSE: c.dense.astype(np.float32).tolist(),
                    SENTENCES: c.sentences.astype(np.float32).tolist(),
                    SPARSE: models.SparseVector(
                        indices=list(c.sparse.indices), values=list(c.sparse.values)
                    ),
                },
                payload={**c.payload(), "state": STAGED, "generation": generation},
            )
            for c in chunks
        ]
        this_generation = models.FieldCondition(
            key="generation", match=models.MatchValue(value=generation)
        )
        with self._lock:
            for start in range(0, len(points), _UPSERT_BATCH):
                self._client.upsert(
                    self._collection, points=points[start : start + _UPSERT_BATCH], wait=True
                )
            self._client.set_payload(
                self._collection,
                {"state": LIVE},
                points=models.Filter(must=[*_doc_conditions(key), this_generation]),
                wait=True,
            )
            self._client.delete(
                self._collection,
                points_selector=models.Filter(
                    must=_doc_conditions(key), must_not=[this_generation]
                ),
                wait=True,
            )
            self._bump()

    def delete_document(self, key: DocKey) -> int:
        where = models.Filter(must=_doc_conditions(key))
        with self._lock:
            removed = self._client.count(self._collection, count_filter=where, exact=True).count
            if removed:
                self._client.delete(self._collection, points_selector=where, wait=True)
                self._bump()
        return int(removed)

    # ------------------------------------------------------------------ reads
    def documents(self, tenant_id: str | None = None) -> dict[DocKey, IndexedDocument]:
        must = [_match("state", LIVE)] + ([_match("tenant_id", tenant_id)] if tenant_id else [])
        payloads: list[Mapping[str, Any]] = []
        offset: Any = None
        while True:
            points, offset = self._client.scroll(
                self._collection,
                scroll_filter=models.Filter(must=must),
                limit=1024,
                offset=offset,
                with_payload=_SUMMARY_FIELDS,
            )
            payloads.extend(p.payload or {} for p in points)
            if offset is None:
                return documents_from_payloads(payloads)

    def search_dense(self, vector: Vectors, scope: AccessScope, limit: int) -> list[Hit]:
        return self._query(vector.astype(np.float32).tolist(), DENSE, scope_filter(scope), limit)

    def search_sparse(self, vector: SparseVec, scope: AccessScope, limit: int) -> list[Hit]:
        if not vector.indices:
            return []
        query = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return self._query(query, SPARSE, scope_filter(scope), limit)

    def sentence_scores(
        self, vector: Vectors, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, float]:
        if not chunk_ids:
            return {}
        where = models.Filter(
            must=[
                *_scope_conditions(scope),
                models.HasIdCondition(has_id=[point_id(c) for c in chunk_ids]),
            ]
        )
        query = [vector.astype(np.float32).tolist()]
        hits = self._query(query, SENTENCES, where, len(chunk_ids))
        return {h.chunk_id: h.score for h in hits}

    def payloads(
        self, chunk_ids: Sequence[str], scope: AccessScope
    ) -> dict[str, Mapping[str, Any]]:
        if not chunk_ids:
            return {}
        where = models.Filter(
            must=[
                *_scope_conditions(scope),
                models.HasIdCondition(has_id=[point_id(c) for c in chunk_ids]),
            ]
        )
        points, _ = self._client.scroll(
            self._collection, scroll_filter=where, limit=len(chunk_ids), with_payload=True
        )
        return {str(p.payload["chunk_id"]): p.payload for p in points if p.payload}

    def _query(self, query: Any, using: str, where: models.Filter, limit: int) -> list[Hit]:
        with self._lock:
            response = self._client.query_points(
                self._collection,
                query=query,
                using=using,
                query_filter=where,
                limit=limit,
                # Generation lets a search drop a version being replaced (see the module doc).
                with_payload=[*CANDIDATE_FIELDS, "generation"],
            )
        return _newest_generation_only(
            [
                Hit(str((p.payload or {})["chunk_id"]), float(p.score), p.payload or {})
                for p in response.points
            ]
        )

    def count(self) -> int:
        where = models.Filter(must=[_match("state", LIVE)])
        return int(self._client.count(self._collection, count_filter=where, exact=True).count)

    def close(self) -> None:
        self._client.close()


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _doc_conditions(key: DocKey) -> list[models.Condition]:
    tenant_id, doc_id = key
    return [_match("tenant_id", tenant_id), _match("doc_id", doc_id)]


def scope_filter(scope: AccessScope) -> models.Filter:
    """The permission rule as an index filter, plus visibility (only live points)."""
    return models.Filter(must=_scope_conditions(scope))


def _scope_conditions(scope: AccessScope) -> list[models.Condition]:
    return [
        _match("state", LIVE),
        _match("tenant_id", scope.tenant_id),
        models.FieldCondition(
            key="allowed_roles", match=models.MatchAny(any=list(scope.roles) or ["\x00"])
        ),
        models.FieldCondition(key="min_level", match=models.MatchAny(any=list(scope.levels))),
        models.FieldCondition(
            key="classification", match=models.MatchAny(any=list(scope.classifications))
        ),
    ]


def _newest_generation_only(hits: list[Hit]) -> list[Hit]:
    """Drop hits of a document version that a newer live version in the same result replaces
    (the moment between making the new version live and deleting the old one)."""
    newest: dict[tuple[str, str], int] = {}
    for hit in hits:
        key = (str(hit.payload["tenant_id"]), str(hit.payload["doc_id"]))
        newest[key] = max(newest.get(key, 0), int(hit.payload.get("generation", 0)))
    return [
        h
        for h in hits
        if int(h.payload.get("generation", 0))
        == newest[(str(h.payload["tenant_id"]), str(h.payload["doc_id"]))]
    ]
