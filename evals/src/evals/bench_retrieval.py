"""``make bench-retrieval DATA=... SPLIT=...``: retrieval quality, latency and ingest rate on a
BEIR dataset, through the retriever's own pipeline.

1. **ingest rate**: a sample of documents ingested cold (parse, chunk, embed, index, with an
   empty embedding cache) beside the embedding model alone on exactly the texts the pipeline
   embedded; the ratio is the pipeline's overhead;
2. **quality**: the whole corpus ingested (the persistent embedding cache makes reruns fast),
   every judged query of the split searched as a principal, and nDCG@10 / Recall@100 scored
   with trec_eval's definitions for each stage alone: BM25, dense, fused, reranked. Chunks
   map to documents by their best chunk (MaxP);
3. **latency**: p50 / p95 per query for each stage alone, everything included (query
   embedding, index search under the permission filter, fusion, rerank); the retrieval cache
   is off, so nothing is served from memory;
4. **cross-validation** (``--cv K``): the tunable weights (dense share of the fusion, rerank
   share) chosen on K-1 folds of the queries and scored on the held-out fold, from scores
   captured once per query; folds keep queries that share a relevant document together;
5. **scale** (``--scale N``): the indexed corpus copied N-1 more times under distinct ids
   (the vectors come from the embedding cache: nothing is embedded again), then latency again.

Tune on the train split only: the numbers of a held-out split are the ones that count.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from retriever.documents import Document, load_bytes
from retriever.embedding import CachedEmbedder
from retriever.engine import Engine, build_engine
from retriever.index import AccessScope
from retriever.ranking import NoRerank, fuse, mix_rerank, ranked
from retriever.search import HybridSearcher
from retriever.settings import (
    CacheSettings,
    IndexSettings,
    RankingSettings,
    RetrieverSettings,
)
from shared.principal import Principal, StaffLevel

from .beir import BeirDataset, load_beir
from .retrieval_metrics import evaluate, grouped_folds, ndcg_per_query

TENANT = "beir"
READER = Principal(user_id="bench", tenant_id=TENANT, roles=("reader",), level=StaffLevel.NONE)
PUBLISHED = [
    ("BM25 (BEIR paper, Table 2)", 0.665),
    ("BM25 Anserini flat", 0.679),
    ("all-MiniLM-L6-v2 (MTEB)", 0.645),
    ("bge-small-en-v1.5 (MTEB)", 0.713),
]
STAGES = ("bm25", "dense", "fused", "reranked")


def beir_document(doc_id: str, title: str, text: str, copy: int = 0) -> Document:
    """A corpus entry as the product ingests a plain-text upload."""
    suffix = f"--copy{copy}" if copy else ""
    return load_bytes(
        text.encode(),
        name=f"{doc_id}.txt",
        source_uri=f"beir:{doc_id}",
        fmt="text",
        max_bytes=10_000_000,
        metadata={
            "doc_id": f"{doc_id}{suffix}",
            "title": title or doc_id,
            "tenant": TENANT,
            "allowed_roles": ["reader"],
            "min_level": "none",
            "classification": "public",
            # A fixed date keeps versions stable, so reruns skip nothing they should not.
            "updated_at": "2020-01-01",
        },
    )


def doc_of(chunk_id: str) -> str:
    """``tenant/doc@version#n`` → ``doc``."""
    return chunk_id.split("/", 1)[1].rsplit("@", 1)[0]


def to_docs(chunk_ids: Sequence[str]) -> list[str]:
    """A chunk ranking as a document ranking: each document at its best chunk's place."""
    return list(dict.fromkeys(doc_of(c) for c in chunk_ids))


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(values), [50, 95])
    return float(p50), float(p95)


# --------------------------------------------------------------------------- ingest rate
@dataclass
class IngestRate:
    documents: int
    chunks: int
    texts: int
    model_texts_per_s: float
    pipeline_texts_per_s: float

    @property
    def ratio(self) -> float:
        return self.pipeline_texts_per_s / self.model_texts_per_s


def measure_ingest(
    data: BeirDataset, settings: RetrieverSettings, sample: int, work: Path
) -> IngestRate:
    ids = sorted(data.corpus)[:sample]
    cold = settings.model_copy(
        update={
            "embedding": settings.embedding.model_copy(update={"cache_dir": work / "cold-cache"}),
            "index": IndexSettings(path=work / "cold-index"),
        }
    )
    engine = build_engine(cold)
    try:
        assert isinstance(engine.embedder, CachedEmbedder)
        model = engine.embedder._inner
        docs = [beir_document(i, *data.corpus[i]) for i in ids]
        texts = engine.ingestor.embedding_inputs(docs)
        model.embed(texts[:64])  # warm-up: first runs of a session are slower
        started = time.perf_counter()
        model.embed(texts)
        model_s = time.perf_counter() - started
        started = time.perf_counter()
        report = engine.ingestor.ingest(beir_document(i, *data.corpus[i]) for i in ids)
        pipeline_s = time.perf_counter() - started
    finally:
        engine.close()
    return IngestRate(
        len(ids), report.chunks, len(texts), len(texts) / model_s, len(texts) / pipeline_s
    )


# --------------------------------------------------------------------------- quality + latency
@dataclass
class Captured:
    """Per query: stage scores, to replay fusion offline with other weights."""

    sparse: dict[str, float]
    dense: dict[str, float]
    sentences: dict[str, float]


def stage_runners(engine: Engine, top: int) -> dict[str, Callable[[str, AccessScope], object]]:
    """One callable per stage alone, each doing everything that stage needs per query."""
    fused_only = HybridSearcher(
        engine.index,
        engine.embedder,
        engine.bm25,
        NoRerank(),
        ranking=engine.searcher.ranking,
        rerank=engine.searcher.rerank_settings,
    )
    limit = engine.searcher.ranking.candidates
    return {
        "bm25": lambda q, s: engine.index.search_sparse(engine.bm25.query(q), s, limit),
        "dense": lambda q, s: engine.index.search_dense(engine.embedder.embed_query(q), s, limit),
        "fused": lambda q, s: fused_only.search(q, s, top),
        "reranked": lambda q, s: engine.searcher.search(q, s, top),
    }


def measure_latency(
    engine: Engine, queries: Sequence[str], top: int
) -> dict[str, tuple[float, float]]:
    scope = AccessScope.of(READER)
    out = {}
    for stage, run in stage_runners(engine, top).items():
        timings = []
        for query in queries:
            started = time.perf_counter()
            run(query, scope)
            timings.append((time.perf_counter() - started) * 1000)
        out[stage] = percentiles(timings)
    return out


def measure_quality(
    engine: Engine, data: BeirDataset, top: int
) -> tuple[dict[str, dict[str, float]], dict[str, Captured]]:
    scope = AccessScope.of(READER)
    runs: dict[str, dict[str, list[str]]] = {s: {} for s in STAGES}
    captured: dict[str, Captured] = {}
    limit = engine.searcher.ranking.candidates
    for qid, text in tqdm(data.queries.items(), desc="queries", unit="q", disable=None):
        result = engine.searcher.search(text, scope, top, keep_stages=True)
        for stage in STAGES:
            runs[stage][qid] = to_docs(result.stages[stage])
        vector = engine.embedder.embed_query(text)
        sparse = {
            h.chunk_id: h.score
            for h in engine.index.search_sparse(engine.bm25.query(text), scope, limit)
        }
        dense = {h.chunk_id: h.score for h in engine.index.search_dense(vector, scope, limit)}
        sentences = engine.index.sentence_scores(vector, sorted(set(sparse) | set(dense)), scope)
        captured[qid] = Captured(sparse, dense, sentences)
    return {s: evaluate(runs[s], data.qrels) for s in STAGES}, captured


def replay(c: Captured, weights: tuple[float, float], depth: int) -> list[str]:
    """The searcher's ranking recomputed from captured scores (same pure functions), with
    ``weights`` = (dense, rerank) beside BM25's 1."""
    dense_weight, rerank_weight = weights
    fused = fuse(c.sparse, c.dense, RankingSettings(dense_weight=dense_weight))
    reranked = {k: c.sentences[k] for k in ranked(fused)[:depth] if k in c.sentences}
    return to_docs(ranked(mix_rerank(fused, reranked, weight=rerank_weight)))


DENSE_WEIGHTS = (0.5, 0.75, 1.0, 1.25, 1.5)
RERANK_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)


def cross_validate(
    captured: dict[str, Captured], data: BeirDataset, folds: int, depth: int
) -> dict[str, Any]:
    grid = list(itertools.product(DENSE_WEIGHTS, RERANK_WEIGHTS))
    per_query = {
        weights: ndcg_per_query(
            {q: replay(c, weights, depth) for q, c in captured.items()}, data.qrels
        )
        for weights in tqdm(grid, desc="grid", disable=None)
    }

    def mean(weights: tuple[float, float], queries: Sequence[str]) -> float:
        return float(np.mean([per_query[weights][q] for q in queries]))

    held_out: list[float] = []
    chosen: list[list[float]] = []
    for fold in grouped_folds(data.qrels, folds):
        test = set(fold)
        train = [q for q in data.qrels if q not in test]
        best = max(grid, key=lambda w: mean(w, train))
        chosen.append(list(best))
        held_out.extend(per_query[best][q] for q in fold)
    everyone = list(data.qrels)
    best_all = max(grid, key=lambda w: mean(w, everyone))
    return {
        "cv_ndcg@10": float(np.mean(held_out)),
        "folds_chose": chosen,
        "best_on_all": list(best_all),
        "best_on_all_ndcg@10": mean(best_all, everyone),
        "grid": {f"{d},{r}": mean((d, r), everyone) for d, r in grid},
    }


# --------------------------------------------------------------------------- scale
def ingest_copies(engine: Engine, data: BeirDataset, copies: int) -> float:
    def docs() -> Iterator[Document]:
        for copy in range(1, copies):
            for doc_id, (title, text) in data.corpus.items():
                yield beir_document(doc_id, title, text, copy)

    started = time.perf_counter()
    total = len(data.corpus) * (copies - 1)
    with tqdm(total=total, desc="scale copies", unit="doc", disable=None) as bar:
        engine.ingestor.ingest(docs(), progress=bar.update)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- main
def _qdrant_answers(url: str, index: IndexSettings) -> bool:
    from qdrant_client import QdrantClient

    key = index.qdrant_api_key.get_secret_value() if index.qdrant_api_key else None
    client = QdrantClient(url=url, api_key=key, timeout=3, check_compatibility=False)
    try:
        client.get_collections()
    except Exception:  # unreachable, refused, or not Qdrant: all mean "not here"
        return False
    finally:
        client.close()
    return True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="BEIR dataset folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--scale", type=int, default=1, help="copies of the corpus for latency")
    parser.add_argument("--cv", type=int, default=5, help="folds (0: skip cross-validation)")
    parser.add_argument("--ingest-sample", type=int, default=300, help="documents ingested cold")
    parser.add_argument("--top", type=int, default=100, help="ranking depth scored")
    parser.add_argument("--latency-queries", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--qdrant-url",
        default=os.environ.get("QDRANT_URL"),
        help="index the corpus in a Qdrant server (default: QDRANT_URL) instead of the"
        " embedded index, in a collection of the run's own, deleted afterwards",
    )
    args = parser.parse_args(argv)
    collection = f"bench_retrieval_{os.getpid()}"
    if args.qdrant_url and not _qdrant_answers(args.qdrant_url, RetrieverSettings().index):
        print(f"no Qdrant server answers at {args.qdrant_url}: measuring the embedded index")
        args.qdrant_url = None

    data = load_beir(args.data, args.split)
    print(
        f"{args.data.name} {args.split}: {len(data.corpus)} documents, {len(data.queries)} queries"
    )
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        work = Path(tmp)
        base = RetrieverSettings()
        settings = base.model_copy(
            update={
                "cache": CacheSettings(enabled=False),
                "index": IndexSettings(path=work / "index")
                if not args.qdrant_url
                # The rest (API key: RETRIEVER_INDEX__QDRANT_API_KEY) from the environment.
                else base.index.model_copy(
                    update={"qdrant_url": args.qdrant_url, "collection": collection}
                ),
            }
        )
        results: dict[str, Any] = {
            "index": "qdrant-server" if args.qdrant_url else "embedded (qdrant-edge)",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "settings": {
                "embedding": settings.embedding.model_dump(
                    mode="json", exclude={"openai_api_key", "cache_dir"}
                ),
                "sparse": settings.sparse.model_dump(),
                "chunking": settings.chunking.model_dump(),
                "ranking": settings.ranking.model_dump(),
                "rerank": settings.rerank.model_dump(mode="json", exclude={"api_key"}),
            },
        }
        if args.ingest_sample:
            rate = measure_ingest(data, settings, args.ingest_sample, work)
            results["ingest"] = rate.__dict__ | {"ratio": rate.ratio}
            print(
                f"ingest ({rate.documents} docs, {rate.chunks} chunks,"
                f" {rate.texts} texts embedded, cold):"
                f" pipeline {rate.pipeline_texts_per_s:.1f} texts/s vs model alone"
                f" {rate.model_texts_per_s:.1f} texts/s = {rate.ratio:.0%}"
            )
        engine = build_engine(settings)
        try:
            started = time.perf_counter()
            with tqdm(
                total=len(data.corpus), desc="ingest corpus", unit="doc", disable=None
            ) as bar:
                report = engine.ingestor.ingest(
                    (beir_document(i, t, x) for i, (t, x) in data.corpus.items()),
                    progress=bar.update,
                )
            results["corpus"] = {
                "chunks": engine.index.count(),
                "seconds": time.perf_counter() - started,
                "failed": len(report.failed),
            }
            print(f"corpus: {engine.index.count()} chunks in {results['corpus']['seconds']:.0f} s")
            quality, captured = measure_quality(engine, data, args.top)
            sample = list(data.queries.values())[: args.latency_queries]
            latency = measure_latency(engine, sample, args.top)
            results["stages"] = {
                s: quality[s] | {"p50_ms": latency[s][0], "p95_ms": latency[s][1]} for s in STAGES
            }
            if args.cv:
                results["cv"] = cross_validate(captured, data, args.cv, settings.rerank.depth)
            if args.scale > 1:
                seconds = ingest_copies(engine, data, args.scale)
                scaled = measure_latency(engine, sample, args.top)
                results["scale"] = {
                    "copies": args.scale,
                    "chunks": engine.index.count(),
                    "ingest_seconds": seconds,
                    "latency": {s: {"p50_ms": v[0], "p95_ms": v[1]} for s, v in scaled.items()},
                }
        finally:
            if args.qdrant_url:
                from qdrant_client import QdrantClient

                QdrantClient(
                    url=args.qdrant_url,
                    api_key=key.get_secret_value() if (key := base.index.qdrant_api_key) else None,
                ).delete_collection(collection)
            engine.close()
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_report(results: dict[str, Any]) -> None:
    print()
    print(f"{'stage':<10} {'nDCG@10':>8} {'R@100':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for stage, r in results["stages"].items():
        print(
            f"{stage:<10} {r['ndcg@10']:>8.4f} {r['recall@100']:>7.4f}"
            f" {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f}"
        )
    print(
        "published SciFact nDCG@10 (test split): " + ", ".join(f"{n} {v:.3f}" for n, v in PUBLISHED)
    )
    if "cv" in results:
        cv = results["cv"]
        print(
            f"cross-validated nDCG@10 (weights tuned on the other folds): {cv['cv_ndcg@10']:.4f};"
            f" folds chose (dense, rerank) weights {cv['folds_chose']};"
            f" best on all {cv['best_on_all']}"
            f" → {cv['best_on_all_ndcg@10']:.4f}"
        )
    if "scale" in results:
        sc = results["scale"]
        lat = ", ".join(
            f"{s} p50 {v['p50_ms']:.1f} / p95 {v['p95_ms']:.1f} ms"
            for s, v in sc["latency"].items()
        )
        print(f"at {sc['chunks']} chunks ({sc['copies']} copies): {lat}")


if __name__ == "__main__":
    main()
