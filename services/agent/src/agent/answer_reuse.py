"""Serving a safe answer again: what may be stored, and how a hit becomes a reply.

A hit is turned back into the model reply it was (markers pointing at the chunks' positions in
*this* request's retrieval) and then goes through the very same citation check, redaction and
audit steps as a fresh answer, so the saga's audit trail is the same and the draft is only
marked ``served_from_cache``. A hit whose chunks are not all in this request's retrieval (which
is already filtered by this principal's permissions) is not served.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from shared.cache import CachedAnswer
from shared.contracts import DraftKind, DraftProduced, RetrievedChunk

from .citations import CitationReport
from .loop import LoopResult

__all__ = ["cacheable", "reply_from", "template_of"]

_MARKER = re.compile(r"\[(\d+)\]")
_SLOT = re.compile(r"\[#(\d+)\]")


def cacheable(
    draft: DraftProduced, result: LoopResult, report: CitationReport, redacted: bool
) -> bool:
    """Routine, fully cited, no tool used, no action, nothing redacted."""
    return (
        draft.kind is DraftKind.ANSWER
        and draft.action is None
        and draft.route is not None
        and draft.route.route == "routine"
        and not draft.route.fallbacks
        and not result.conversation.turns
        and report.verdict == "ok"
        and report.dropped == 0
        and bool(draft.citations)
        and not redacted
    )


def template_of(
    text: str, chunks: Sequence[RetrievedChunk], model: str, provider: str
) -> CachedAnswer | None:
    """The reply with positional markers replaced by chunk slots; None if one is invalid."""
    chunk_ids: list[str] = []
    doc_ids: list[str] = []
    bad = False

    def slot(match: re.Match[str]) -> str:
        nonlocal bad
        n = int(match.group(1))
        if not 1 <= n <= len(chunks):
            bad = True
            return match.group(0)
        chunk = chunks[n - 1]
        if chunk.chunk_id not in chunk_ids:
            chunk_ids.append(chunk.chunk_id)
            if chunk.doc_id not in doc_ids:
                doc_ids.append(chunk.doc_id)
        return f"[#{chunk_ids.index(chunk.chunk_id)}]"

    template = _MARKER.sub(slot, text)
    if bad or not chunk_ids:
        return None
    return CachedAnswer(
        template=template,
        chunk_ids=tuple(chunk_ids),
        doc_ids=tuple(doc_ids),
        model=model,
        provider=provider,
    )


def reply_from(cached: CachedAnswer, chunks: Sequence[RetrievedChunk]) -> str | None:
    """The reply with markers for this request's chunk positions; None if a chunk is absent."""
    position = {c.chunk_id: i + 1 for i, c in enumerate(chunks)}
    if any(cid not in position for cid in cached.chunk_ids):
        return None
    slots = cached.chunk_ids
    return _SLOT.sub(lambda m: f"[{position[slots[int(m.group(1))]]}]", cached.template)
