"""The human decision on an approval as its own trace, linked to the saga's.

A decision happens hours after the saga's request, in another HTTP request by another person:
making it a child of the saga's trace would stretch that trace over hours and hide who did
what. So the decision opens a new root span (``approval.decide``) and carries a span *link* to
the saga's intake span (the ``traceparent`` the approval kept). The execution of the approved
action continues the saga's own trace (``approver.executor``), so the saga's trace shows what
was done and the decision's trace shows who allowed it; a viewer follows the link between them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace

__all__ = ["decision_span", "link_to_saga"]

tracer = trace.get_tracer("approver.decisions")


@contextmanager
def decision_span(verdict: str, draft_id: str) -> Iterator[trace.Span]:
    # An empty context: no parent, whatever the HTTP request carried.
    with tracer.start_as_current_span(
        "approval.decide",
        context=context.Context(),
        kind=trace.SpanKind.SERVER,
        attributes={"approval.decision": verdict, "approval.draft_id": draft_id},
    ) as span:
        yield span


def link_to_saga(span: trace.Span, saga_trace: Mapping[str, str]) -> None:
    saga = trace.get_current_span(propagate.extract(dict(saga_trace))).get_span_context()
    if saga.is_valid:
        span.add_link(saga, {"link.reason": "decision on the saga's approval"})
