"""The safe-answer cache: a routine, fully cited answer, served again to the same question.

What may be stored: an answer (not a refusal, not an action) on the routine route, every
sentence of which cites a retrieved chunk, made without any tool call (so nothing in it is
live data about one customer). The key is the normalised question, the principal's permission
scope (:attr:`shared.principal.Principal.scope_key`) and the tenant's content version (a digest
of its indexed documents, see the retriever's ``shared_caches``): two principals whose scopes
differ never share an entry, and a changed document changes the version.

Entries are tagged with the documents they cite; the retriever drops those tags when a
document is re-ingested or deleted, so a stale answer is deleted, not merely unreachable. The
agent still serves a hit only if every chunk it cites is among the chunks retrieved for *this*
request (already filtered by this principal's permissions): a wrong key cannot leak.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from pydantic import BaseModel

from .caches import CacheMetrics, NamedCache, digest
from .settings import CacheSettings
from .store import CacheStore

__all__ = ["AnswerCache", "CachedAnswer", "document_tag", "normalise_question"]

_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = re.compile(r"^[\s\"'“”‘’¿¡]+|[\s?!.。？！\"'“”‘’]+$")


def normalise_question(text: str) -> str:
    """Case, Unicode form, runs of spaces and closing punctuation do not change a question."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE_PUNCTUATION.sub("", _SPACES.sub(" ", folded)).strip()


def document_tag(tenant_id: str, doc_id: str) -> str:
    return f"doc:{tenant_id}/{doc_id}"


class CachedAnswer(BaseModel):
    #: The model's reply with each ``[n]`` written as ``[#k]``, k indexing ``chunk_ids``: the
    #: same chunks may sit at other positions in the next request's retrieval.
    template: str
    chunk_ids: tuple[str, ...]
    doc_ids: tuple[str, ...]
    model: str
    #: The answering model's provider: the citation check is stricter for generative ones.
    provider: str


class AnswerCache:
    def __init__(
        self, store: CacheStore, settings: CacheSettings, metrics: CacheMetrics | None = None
    ) -> None:
        self.entries = NamedCache(
            "answer",
            store,
            CachedAnswer,
            ttl_s=settings.answer_ttl_s,
            enabled=settings.enabled and settings.answers,
            metrics=metrics,
        )

    @staticmethod
    def key(question: str, scope_key: str, content_version: str) -> str:
        return digest(normalise_question(question), scope_key, content_version)

    async def get(self, question: str, scope_key: str, content_version: str) -> CachedAnswer | None:
        if not content_version:  # an older retriever: no version to key on, no caching
            return None
        return await self.entries.get(self.key(question, scope_key, content_version))

    async def put(
        self,
        question: str,
        scope_key: str,
        content_version: str,
        answer: CachedAnswer,
        *,
        tenant_id: str,
    ) -> None:
        if not content_version:
            return
        tags = {document_tag(tenant_id, doc_id) for doc_id in answer.doc_ids}
        await self.entries.put(
            self.key(question, scope_key, content_version), answer, tags=sorted(tags)
        )

    async def drop_documents(self, tenant_id: str, doc_ids: Iterable[str]) -> int:
        """Delete every cached answer citing one of ``doc_ids``; how many were deleted."""
        dropped = 0
        for doc_id in doc_ids:
            dropped += await self.entries.drop_tag(document_tag(tenant_id, doc_id))
        return dropped
