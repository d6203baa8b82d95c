"""A re-ingested or deleted document drops the cached answers citing it, in the shared Redis
the agents read (a real Redis; a private namespace per test)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from retriever.app import build_service
from retriever.embedding import HashingEmbedder
from retriever.engine import build_engine
from retriever.index.memory import MemoryChunkIndex
from retriever.settings import EmbeddingSettings, RetrieverSettings
from shared.auth import TokenService
from shared.cache import AnswerCache, CachedAnswer, CacheSettings, RedisStore
from shared.settings import KafkaSettings

pytestmark = pytest.mark.integration

REDIS = "redis://127.0.0.1:6379/0"
ENTRY = CachedAnswer(
    template="Restart it twice [#0].",
    chunk_ids=("c1",),
    doc_ids=("kb-new",),
    model="extractive-v3",
    provider="offline",
)


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, AnswerCache, dict[str, str]]]:
    if not _redis_answers():
        pytest.skip("no Redis at 127.0.0.1:6379")
    caches = CacheSettings(redis_url=REDIS, namespace=f"test-{uuid.uuid4().hex[:10]}")
    settings = RetrieverSettings(
        kafka=KafkaSettings(), embedding=EmbeddingSettings(cache=False), caches=caches
    )
    engine = build_engine(settings, embedder=HashingEmbedder(), index=MemoryChunkIndex())
    service = build_service(settings, engine=engine)
    store = RedisStore(REDIS, namespace=caches.namespace)
    token = TokenService(settings.auth).mint(
        user_id="admin", tenant_id="harborpine", roles=("knowledge-admin",), level="L2"
    )
    async with TestKafkaBroker(service.broker), service.running():
        transport = httpx.ASGITransport(app=service.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            yield client, AnswerCache(store, caches), {"Authorization": f"Bearer {token}"}
    await store.close()


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> str:
    response = await client.post(
        "/v1/knowledge/documents",
        headers=headers,
        data={
            "allowed_roles": "support",
            "min_level": "L1",
            "classification": "internal",
            "doc_id": "kb-new",
        },
        files={"file": ("guide.md", body)},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["status"])


async def test_changed_re_ingest_and_delete_drop_the_answers_citing_the_document(
    setup: tuple[httpx.AsyncClient, AnswerCache, dict[str, str]], tmp_path: Path
) -> None:
    client, answers, headers = setup
    assert await _upload(client, headers, b"# Guide\n\n## Steps\n\nRestart the router.") == (
        "indexed"
    )
    await answers.put("q", "scope", "v1", ENTRY, tenant_id="harborpine")
    # Unchanged content: nothing to drop.
    assert await _upload(client, headers, b"# Guide\n\n## Steps\n\nRestart the router.") == (
        "unchanged"
    )
    assert await answers.get("q", "scope", "v1") is not None
    assert await _upload(client, headers, b"# Guide\n\n## Steps\n\nRestart it twice.") == (
        "indexed"
    )
    assert await answers.get("q", "scope", "v1") is None, "a changed document drops its answers"
    await answers.put("q", "scope", "v2", ENTRY, tenant_id="harborpine")
    gone = await client.delete("/v1/knowledge/documents/kb-new", headers=headers)
    assert gone.status_code == 200
    assert await answers.get("q", "scope", "v2") is None, "a deleted document drops its answers"
