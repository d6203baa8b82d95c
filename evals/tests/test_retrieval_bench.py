"""The retrieval benchmark runs end to end on a tiny BEIR-layout dataset made here.

Run as programs, the way ``make bench-retrieval`` runs them: under pytest's importlib mode the
repository's ``evals/`` folder shadows the installed ``evals`` package in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOPICS = {
    "tents": "Ridgeline tents use aluminium poles and a waterproof flysheet for storms.",
    "stoves": "Emberlite stoves burn isobutane canisters and boil water in three minutes.",
    "jackets": "Rain jackets with taped seams keep hikers dry in heavy rain.",
    "boots": "Leather boots need wax after muddy hikes to stay waterproof.",
    "maps": "Topographic maps show contour lines, trails and water sources.",
}


def write_dataset(folder: Path) -> None:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for i, (topic, text) in enumerate(TOPICS.items()):
            fh.write(json.dumps({"_id": f"d{i}", "title": topic.title(), "text": text}) + "\n")
            fh.write(
                json.dumps({"_id": f"n{i}", "title": "Notes", "text": f"Unrelated note {i}."})
                + "\n"
            )
    queries = {f"q{i}": f"which {topic} are best" for i, topic in enumerate(TOPICS)}
    with (folder / "queries.jsonl").open("w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
        fh.write(json.dumps({"_id": "unjudged", "text": "ignored"}) + "\n")
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(TOPICS)))
    )


METRICS_CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from evals.beir import load_beir
    from evals.retrieval_metrics import evaluate, grouped_folds

    data = load_beir(Path(sys.argv[1]), "train")
    assert len(data.corpus) == 10 and set(data.queries) == {f"q{i}" for i in range(5)}
    perfect = {q: [next(iter(rels))] for q, rels in data.qrels.items()}
    assert evaluate(perfect, data.qrels) == {"ndcg@10": 1.0, "recall@100": 1.0}
    second = {q: ["x", next(iter(rels))] for q, rels in data.qrels.items()}
    assert abs(evaluate(second, data.qrels)["ndcg@10"] - 0.6309) < 1e-4
    assert evaluate({}, data.qrels)["ndcg@10"] == 0.0
    folds = grouped_folds({"a": {"d1": 1}, "b": {"d1": 1}, "c": {"d2": 1}}, 2)
    assert sorted(map(sorted, folds)) == [["a", "b"], ["c"]]
    print("ok")
    """
)


@pytest.mark.unit
def test_metrics_match_trec_eval_definitions(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", METRICS_CHECK, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.integration
def test_bench_runs_every_stage_and_scale(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data")
    out = tmp_path / "results.json"
    env = {**os.environ, "RETRIEVER_EMBEDDING__CACHE_DIR": str(tmp_path / "cache")}
    args = ["--data", str(tmp_path / "data"), "--ingest-sample", "4", "--cv", "2", "--scale", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "evals.bench_retrieval", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["stages"]) == {"bm25", "dense", "fused", "reranked"}
    assert results["stages"]["reranked"]["ndcg@10"] > 0.8
    assert results["scale"]["chunks"] == 3 * results["corpus"]["chunks"]
    assert results["ingest"]["ratio"] > 0
    assert "cross-validated nDCG@10" in done.stdout
