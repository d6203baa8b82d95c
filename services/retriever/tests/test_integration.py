"""The retriever on the real broker (Tansu) with the real embedded index, and its CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker
from typer.testing import CliRunner

from devstack.pytest_plugin import TopicProbe
from retriever.app import build_service
from retriever.cli import app as cli
from retriever.documents import discover, load_many
from retriever.embedding import HashingEmbedder
from retriever.engine import build_engine
from retriever.index.edge import EdgeChunkIndex
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.contracts import ChatRequested, Topic
from shared.messaging import EventBus
from shared.principal import Principal, StaffLevel
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_request_to_retrieved_on_the_real_broker(
    kafka_settings: KafkaSettings, probe: TopicProbe, knowledge_base: Path, tmp_path: Path
) -> None:
    settings = RetrieverSettings(kafka=kafka_settings, embedding=EmbeddingSettings(cache=False))
    index = EdgeChunkIndex(tmp_path / "index", dim=64, embedding_model="hashing")
    engine = build_engine(settings, embedder=HashingEmbedder(), index=index)
    engine.ingestor.ingest(load_many(discover(knowledge_base), max_bytes=10**7))
    service = build_service(settings, engine=engine)
    asker = Principal(user_id="tw", tenant_id="tidewell", roles=("support",), level=StaffLevel.L1)
    event = ChatRequested(
        request_id=uuid.uuid4(),
        tenant_id="tidewell",
        principal=asker,
        message="How do I port my number?",
    )
    try:
        async with service.running():
            async with KafkaBroker(
                kafka_settings.bootstrap_servers, enable_idempotence=False
            ) as broker:
                await EventBus(broker, kafka_settings, service="test").publish(Topic.REQUEST, event)
                [retrieved] = await probe.wait_for(
                    lambda m: (
                        m["topic"] == kafka_settings.topic("retrieved")
                        and m["headers"]["request_id"] == str(event.request_id)
                    ),
                    timeout=30,
                )
                audits = await probe.wait_for(
                    lambda m: (
                        m["topic"] == kafka_settings.topic("audit")
                        and m["body"]["action"] == "retrieval.completed"
                        and m["headers"]["request_id"] == str(event.request_id)
                    ),
                    timeout=30,
                )
    finally:
        engine.close()
    chunks = retrieved["body"]["chunks"]
    assert chunks and {c["doc_id"] for c in chunks} <= {
        p.stem for p in (knowledge_base / "tidewell").glob("*.md")
    }
    assert "tw-l2-sim-swap-fraud" not in {c["doc_id"] for c in chunks}
    assert retrieved["key"] == str(event.request_id).encode()
    assert audits[0]["body"]["details"]["chunks"] == len(chunks)
    screened = [m for m in probe.on("audit") if m["body"]["action"] == "guardrail.input"]
    assert screened and screened[0]["body"]["outcome"] == "ok"


def test_cli_ingests_the_readable_files_and_names_the_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text("# Returns\n\nTents can be returned within 30 days.")
    (docs / "stoves.html").write_text("<h1>Stoves</h1><p>Clean the burner monthly.</p>")
    (docs / "notes.txt").write_text("Shipping takes three days.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    monkeypatch.setenv("RETRIEVER_INDEX__PATH", str(tmp_path / "index"))
    monkeypatch.setenv("RETRIEVER_EMBEDDING__CACHE_DIR", str(tmp_path / "cache"))
    defaults = [
        "--tenant",
        "acme",
        "--role",
        "support",
        "--min-level",
        "L1",
        "--classification",
        "internal",
    ]
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", str(docs), *defaults])
    assert first.exit_code == 1, first.output
    assert "indexed 3 documents" in first.output
    assert "broken.pdf: unreadable PDF" in first.output
    (docs / "broken.pdf").unlink()
    again = runner.invoke(cli, ["ingest", str(docs), *defaults, "--prune"])
    assert again.exit_code == 0, again.output
    assert "0 documents" in again.output and "3 unchanged" in again.output
    found = runner.invoke(
        cli,
        [
            "search",
            "clean the stove burner",
            "--tenant",
            "acme",
            "--role",
            "support",
            "--level",
            "L1",
        ],
    )
    assert found.exit_code == 0 and "1. [" in found.output and "stoves" in found.output
    listed = runner.invoke(cli, ["documents", "--tenant", "acme"])
    assert listed.output.count("acme/") == 3
    deleted = runner.invoke(cli, ["delete", "notes", "--tenant", "acme"])
    assert deleted.exit_code == 0 and "deleted 1 chunks" in deleted.output
