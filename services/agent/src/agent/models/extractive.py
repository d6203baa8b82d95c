"""The offline extractive model: answers only with sentences taken from retrieved chunks.

Deterministic, no network, a millisecond or two per request. Each quotable passage of each
retrieved chunk (sentences, list items, table rows spelled out with their column names) is
scored by how much of the question's content it covers: stemmed terms weighted by rarity
across the retrieved chunks, headings above the passage counting half (an FAQ's question is
the heading of its answer), a bonus when the question asks for a quantity and the passage
holds one; blended with how close its meaning is to the question (the cosine of the
retriever's sentence vector, shipped with each chunk), which catches paraphrase. The best
passages become the answer, each cited as ``[n]``. When none covers
enough of the question it refuses plainly instead of guessing.

Behind the chat-model port it also acts on the request like a chat model would: it asks for
a read tool when the question needs live data (an order's status) and proposes a write tool
when the user asks for an action, through the same tool calls an LLM would make.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from shared.contracts import Citation, RetrievedChunk
from shared.pricing import estimate_tokens

from ..intents import detect_intent, detect_lookup
from ..text import Passage, content_terms, passages
from .port import Conversation, ModelReply, ToolCall, Usage
from .prompt import render_messages, render_tools

__all__ = ["LANGUAGE_REFUSAL_TEXT", "REFUSAL_TEXT", "Answer", "ExtractiveModel", "refusal_for"]

REFUSAL_TEXT = (
    "I could not find an answer to that in the documents available to you, so I will not "
    "guess. Try rephrasing, or ask a colleague with access to more documents."
)

LANGUAGE_REFUSAL_TEXT = (
    "I could not find an answer, and the likely reason is the language: your question is not"
    " written in English, the language of the documents I can search. Please ask it in"
    " English."
)


def refusal_for(question: str) -> str:
    """The refusal to give: one that names the language when the question is mostly in a
    script the English knowledge base cannot match (the retriever refuses such queries as
    ``unsupported_script``), the plain one otherwise. Latin-script languages (German,
    French) are not recognised here yet."""
    letters = [c for c in question if c.isalpha()]
    if not letters:
        return REFUSAL_TEXT
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    return LANGUAGE_REFUSAL_TEXT if latin < 0.5 * len(letters) else REFUSAL_TEXT


_QUANTITY_QUESTION = re.compile(
    r"\b(how (much|many|long|fast|soon|far|often)|when|what time|minimum|maximum|limit|"
    r"deadline|cost|price|fee|budget|allowance|target|size|which (day|size|priority))\b",
    re.IGNORECASE,
)
_HAS_QUANTITY = re.compile(r"\d")
# The word after "how" belongs to the question form, not its topic: "how long is the warranty"
# asks about the warranty, and "long" in a passage is no evidence of an answer.
_INTERROGATIVE = re.compile(r"\bhow (long|much|many|far|often|soon|fast|big|old)\b", re.IGNORECASE)
# A sentence about the document ("This page explains ...") matches a question's words and
# answers nothing: it is quoted only if nothing else is relevant.
_ABOUT_THE_DOCUMENT = re.compile(
    r"(^|[,;:]\s*)(this|the following|these) (page|guide|document|section|policy|article|faq|"
    r"runbook|procedure|table|list)s? (explains?|describes?|tells?|covers?|sets? out|lists?|"
    r"shows?|summari[sz]es?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[Citation, ...]
    grounded: bool


@dataclass(frozen=True)
class _Scored:
    score: float
    chunk_rank: int
    passage: Passage
    terms: frozenset[str]


class ExtractiveModel:
    name = "extractive-v3"
    provider = "offline"

    def __init__(
        self,
        *,
        max_sentences: int = 3,
        min_relevance: float = 0.44,
        semantic_weight: float = 0.4,
        extra_gain: float = 0.3,
    ) -> None:
        self.max_sentences = max_sentences
        self.min_relevance = min_relevance
        self.semantic_weight = semantic_weight
        self.extra_gain = extra_gain

    # ------------------------------------------------------------------ chat-model port
    async def complete(self, conversation: Conversation) -> ModelReply:
        call = self._tool_call(conversation) if conversation.allow_tools else None
        if call is not None:
            return ModelReply(
                text="",
                tool_calls=(call,),
                model=self.name,
                finish_reason="tool",
                usage=_usage(conversation, json.dumps(call.arguments)),
            )
        chosen = self.select(conversation.question, conversation.chunks)
        facts = [_describe(t.call.name, t.content) for t in conversation.turns if t.ok]
        problems = [str(t.content.get("message", "")) for t in conversation.turns if not t.ok]
        # Markers name the chunk's position in the conversation; the citation check maps them.
        quoted = [f"{_sentence(s.passage.text)} [{s.chunk_rank + 1}]" for s in chosen]
        # A refused or failed tool call is said first: the user must learn that the refund
        # they asked for was not drafted, whatever else the documents say.
        refused = [f"I could not complete that: {_sentence(p)}" for p in problems if p]
        parts = [*refused, *_clarification(conversation), *facts, *quoted] or [
            refusal_for(conversation.question)
        ]
        text = " ".join(parts)
        return ModelReply(text=text, model=self.name, usage=_usage(conversation, text))

    # ------------------------------------------------------------------ plain answering
    def answer(self, question: str, chunks: Sequence[RetrievedChunk]) -> Answer:
        """The cited answer to ``question`` from ``chunks``, markers numbered from 1."""
        chosen = self.select(question, chunks)
        if not chosen:
            return Answer(refusal_for(question), (), grounded=False)
        markers: dict[str, int] = {}
        citations: list[Citation] = []
        parts: list[str] = []
        for item in chosen:
            chunk = chunks[item.chunk_rank]
            if chunk.chunk_id not in markers:
                markers[chunk.chunk_id] = len(markers) + 1
                citations.append(citation_for(chunk, markers[chunk.chunk_id]))
            parts.append(f"{_sentence(item.passage.text)} [{markers[chunk.chunk_id]}]")
        return Answer(" ".join(parts), tuple(citations), grounded=True)

    def answerability(self, question: str, chunks: Sequence[RetrievedChunk]) -> float:
        """The score the refusal threshold is compared with: the best passage's (0 if none)."""
        threshold, self.min_relevance = self.min_relevance, 0.0
        try:
            chosen = self.select(question, chunks)
        finally:
            self.min_relevance = threshold
        return chosen[0].score if chosen else 0.0

    def select(self, question: str, chunks: Sequence[RetrievedChunk]) -> list[_Scored]:
        """The passages that answer ``question``, best first; empty when none does."""
        query = list(dict.fromkeys(content_terms(_INTERROGATIVE.sub("how", question))))
        if not query or not chunks:
            return []
        weights = _weights(query, chunks)
        total = sum(weights.values())
        wants_quantity = bool(_QUANTITY_QUESTION.search(question))
        scored: list[_Scored] = []
        for rank, chunk in enumerate(chunks):
            outer = set(content_terms(" ".join((chunk.title, *chunk.section_path))))
            vectors = [(frozenset(content_terms(s.text)), s.similarity) for s in chunk.sentences]
            for passage in passages(chunk.text):
                terms = frozenset(content_terms(passage.text))
                context = outer | set(content_terms(" ".join(passage.headings)))
                covered = sum(w for t, w in weights.items() if t in terms)
                covered += 0.5 * sum(w for t, w in weights.items() if t in context - terms)
                score = covered / total
                meaning = _similarity(terms, vectors)
                if meaning is not None:
                    # Words miss paraphrase ("share" / "disclose to partners"); the sentence
                    # vector does not, and keeps the score on the same 0..1 scale.
                    score = (1 - self.semantic_weight) * score + self.semantic_weight * meaning
                if wants_quantity and _HAS_QUANTITY.search(passage.text):
                    score += 0.08
                if _ABOUT_THE_DOCUMENT.search(passage.text):
                    score *= 0.5
                # Retrieval order breaks ties: the retriever saw more than term overlap.
                score += 0.02 * (1 - rank / len(chunks))
                scored.append(_Scored(score, rank, passage, terms))
        scored.sort(key=lambda s: (-s.score, s.chunk_rank))
        if not scored or scored[0].score < self.min_relevance:
            return []
        chosen = [scored[0]]
        covered_terms = set(scored[0].terms)
        # Later picks are scored by what they add: a question with two parts gets both parts
        # answered instead of three rows of the same table.
        for _ in range(self.max_sentences - 1):
            best: _Scored | None = None
            best_gain = 0.0
            for item in scored:
                if item.score < 0.6 * chosen[0].score:
                    break
                if item in chosen or any(_similar(item.terms, c.terms) for c in chosen):
                    continue
                repeat = sum(weights.get(t, 0.0) for t in item.terms & covered_terms)
                gain = item.score - 0.5 * repeat / total
                if gain > best_gain:
                    best, best_gain = item, gain
            if best is None or best_gain < self.extra_gain * chosen[0].score:
                break
            chosen.append(best)
            covered_terms |= best.terms
        return chosen

    # ------------------------------------------------------------------ tool use
    @staticmethod
    def _tool_call(conversation: Conversation) -> ToolCall | None:
        """A lookup or an action the user's own message asks for, once per conversation."""
        offered = {t.name for t in conversation.tools}
        done = {t.call.name for t in conversation.turns}
        user_id = conversation.principal.user_id
        for wanted in (
            detect_lookup(conversation.question),
            detect_intent(conversation.question, user_id=user_id),
        ):
            if wanted is None or wanted.tool not in offered or wanted.tool in done:
                continue
            if getattr(wanted, "missing", ()):
                continue
            arguments = json.loads(json.dumps(wanted.arguments, default=str))
            return ToolCall(id=f"call_{len(done) + 1}", name=wanted.tool, arguments=arguments)
        return None


_TOOL_LABEL = {
    "issue_refund": "a refund",
    "reset_password": "a password reset",
    "create_ticket": "a support ticket",
    "escalate": "an escalation to a senior colleague",
}


def _clarification(conversation: Conversation) -> list[str]:
    """What a requested action still needs, asked instead of guessed."""
    intent = detect_intent(conversation.question, user_id=conversation.principal.user_id)
    if intent is None or intent.complete:
        return []
    needed = ", ".join(m.replace("_", " ") for m in intent.missing)
    return [f"To request {_TOOL_LABEL[intent.tool]} I need: {needed}. Please send it again."]


def citation_for(chunk: RetrievedChunk, marker: int) -> Citation:
    return Citation(
        marker=marker,
        chunk_id=chunk.chunk_id,
        doc_id=chunk.doc_id,
        title=chunk.title,
        source_uri=chunk.source_uri,
        section=" › ".join(chunk.section_path),
    )


def _weights(query: list[str], chunks: Sequence[RetrievedChunk]) -> dict[str, float]:
    docs = [set(content_terms(f"{c.title} {' '.join(c.section_path)} {c.text}")) for c in chunks]
    n = len(docs)
    return {t: math.log(1 + (n + 1) / (1 + sum(t in d for d in docs))) for t in query}


def _similarity(
    terms: frozenset[str], sentences: Sequence[tuple[frozenset[str], float]]
) -> float | None:
    """The retriever's similarity of the sentence this passage is (matched by its words:
    the two split text alike but not identically), or None when no sentence matches."""
    best: tuple[float, float] | None = None
    for words, similarity in sentences:
        if not words or not terms:
            continue
        overlap = len(words & terms) / len(words | terms)
        if overlap >= 0.5 and (best is None or overlap > best[0]):
            best = (overlap, similarity)
    return None if best is None else best[1]


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) > 0.8


def _sentence(text: str) -> str:
    text = text.rstrip()
    return text if text[-1:] in ".!?" else f"{text}."


def _describe(tool: str, data: dict[str, object]) -> str:
    """One plain sentence about a read tool's result (the offline model has no prose)."""
    fields = ", ".join(
        f"{k.replace('_', ' ')} {_plain(v)}" for k, v in data.items() if v not in (None, "", [])
    )
    return f"Result of {tool.replace('_', ' ')}: {fields}."


def _plain(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("sku") or ", ".join(map(str, value.values())))
    return str(value)


def _usage(conversation: Conversation, output: str) -> Usage:
    """The tokens this turn would have cost a chat model: the same prompt the OpenAI adapter
    sends (messages and tools), and the reply. Free here, priced by the bench and the reports
    at a paid model's rates, so the offline stack's cost figures mean something."""
    prompt = json.dumps(render_messages(conversation)) + json.dumps(render_tools(conversation))
    return Usage(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(output))
