"""Which audit steps a settled request must have in the log: the expectation table.

A request the gateway shows as settled went through a known path of the saga, and every
service on that path records its steps (``EventBus.audit``, the agent's ``AuditTrail``, the
approver's ``audit_event``). So a settled request whose path's steps are not all in
``audit.records`` lost audit records, whatever the hash chain says: the chain proves that the
rows present were not altered, not that every row arrived. The incident that motivated this: an
auditor crash, and a request shown as ``answered`` with no audit rows at all.

The table below is derived from the emitters, not from the gateway's statuses. A path is a
*front* (how the draft came to be) followed by a *back* (what the approver made of it):

Fronts, all recorded by the retriever and the agent:

- ``chat-answer``: retriever ``guardrail.input`` (passed) and ``retrieval.completed``; agent
  ``agent.routed``, ``guardrail.citations``, ``guardrail.output``, ``draft.produced``. Ends as an
  answer, or as a refusal when the answer was not grounded.
- ``chat-blocked``: the input guardrail blocked the request: retriever ``guardrail.input``
  (denied, no retrieval), agent ``guardrail.input`` (denied) and ``draft.produced`` (a refusal).
- ``chat-action``: retriever as in chat-answer; agent ``agent.routed``, ``guardrail.tool``,
  ``tool.proposed``, ``draft.produced`` (a proposed write).
- ``mcp-action``: a tool call through the agent's MCP server: agent ``guardrail.tool``,
  ``tool.proposed``, ``draft.produced``. No retriever, never through the gateway.

Backs, recorded by the approver (and the gateway for a timeout):

- ``auto-approved``: ``draft.auto_approved`` (answers and refusals are released by policy).
- ``rejected-at-intake``: ``approval.rejected`` (an invalid action, someone else's object, or a
  request already past its deadline).
- ``pending``: ``approval.pending``; then ``approval.signed`` (at least one) and
  ``approval.rejected``, or ``approval.approved`` and ``approval.executed`` /
  ``approval.failed``; or ``approval.expired``.
- ``dead-lettered``: ``dlq.routed`` from whichever service gave up on a message of the saga;
  what came before it is unknown, so nothing else is required.
- ``timed-out``: ``request.timed_out`` by the gateway's deadline sweeper; likewise.

And in front of all of them, ``request.accepted`` by the gateway when the request came in
through the gateway's API and was handed to the broker. Requests that upstream systems
publish on ``request`` directly, and MCP calls, have no such step. The caller decides (see
:class:`Origin`), from the gateway's own record of the request.

Optional steps (``model.fallback``, ``tool.executed``, ``guardrail.tool`` of read tools,
``approval.denied``, a second ``approval.signed``) are never required: only steps every saga on
a path records. A path that can end in several statuses is listed under each.

When several paths lead to a status (a refusal: chat-answer or chat-blocked), the one that
explains the evidence best is chosen: the steps in the log plus those the gateway projected
into its timeline from the same topic (a second, independent consumer: what it saw happened).
The saga is complete if the chosen path's steps are all in the log. When the evidence fits no
path, the closest one names the missing steps; the saga is reported incomplete either way.

A new emitter on every path of a status, or a new terminal status, must be added here: the
unit tests (``tests/test_expectations.py``) pin the table, and ``auditor verify`` only checks the
statuses listed in :data:`CHECKED_STATUSES`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ACCEPTED",
    "CHECKED_STATUSES",
    "TIMED_OUT",
    "Origin",
    "Path",
    "SagaVerdict",
    "Step",
    "check_saga",
    "paths_for",
]


@dataclass(frozen=True, order=True)
class Step:
    """One audit step: ``action`` recorded by ``service`` (``None``: by any service)."""

    service: str | None
    action: str

    def matches(self, service: str, action: str) -> bool:
        return action == self.action and (self.service is None or service == self.service)

    def __str__(self) -> str:
        return f"{self.service or '*'}:{self.action}"


@dataclass(frozen=True)
class _Segment:
    name: str
    steps: tuple[Step, ...]
    #: Whether a request taking this segment can have come through the gateway.
    via_gateway: bool = True


@dataclass(frozen=True)
class Path:
    name: str
    steps: tuple[Step, ...]


class Origin(Enum):
    """Where a request came from, as far as the audit must show it."""

    #: Through the gateway's API, and handed to the broker: ``request.accepted`` is required.
    GATEWAY = "gateway"
    #: Published by an upstream system, an MCP call, or a gateway request that never reached
    #: the broker: no ``request.accepted``.
    OTHER = "other"


def _s(service: str | None, action: str) -> Step:
    return Step(service, action)


ACCEPTED = _s("gateway", "request.accepted")
TIMED_OUT = _s("gateway", "request.timed_out")

_SCREENED = _s("retriever", "guardrail.input")
_RETRIEVED = _s("retriever", "retrieval.completed")
_ROUTED = _s("agent", "agent.routed")
_DRAFTED = _s("agent", "draft.produced")
_PROPOSED = (_s("agent", "guardrail.tool"), _s("agent", "tool.proposed"))

_CHAT_ANSWER = _Segment(
    "chat-answer",
    (
        _SCREENED,
        _RETRIEVED,
        _ROUTED,
        _s("agent", "guardrail.citations"),
        _s("agent", "guardrail.output"),
        _DRAFTED,
    ),
)
_CHAT_BLOCKED = _Segment("chat-blocked", (_SCREENED, _s("agent", "guardrail.input"), _DRAFTED))
_CHAT_ACTION = _Segment("chat-action", (_SCREENED, _RETRIEVED, _ROUTED, *_PROPOSED, _DRAFTED))
_MCP_ACTION = _Segment("mcp-action", (*_PROPOSED, _DRAFTED), via_gateway=False)
#: A saga that ended part-way (dead-lettered, timed out): the steps before are not required.
_ANY = _Segment("any", ())

_PENDING = _s("approver", "approval.pending")
_SIGNED = _s("approver", "approval.signed")
_APPROVED = (_PENDING, _SIGNED, _s("approver", "approval.approved"))

_AUTO = _Segment("auto-approved", (_s("approver", "draft.auto_approved"),))
_INTAKE_REJECTED = _Segment("rejected-at-intake", (_s("approver", "approval.rejected"),))
_AWAITING = _Segment("pending", (_PENDING,))
_SIGNED_REJECTED = _Segment(
    "signed-rejected", (_PENDING, _SIGNED, _s("approver", "approval.rejected"))
)
_SIGNED_APPROVED = _Segment("approved", _APPROVED)
_EXECUTED = _Segment("executed", (*_APPROVED, _s("approver", "approval.executed")))
_EXECUTION_FAILED = _Segment("execution-failed", (*_APPROVED, _s("approver", "approval.failed")))
_EXPIRED = _Segment("expired", (_PENDING, _s("approver", "approval.expired")))
_DEAD_LETTERED = _Segment("dead-lettered", (_s(None, "dlq.routed"),))
_TIMED_OUT = _Segment("timed-out", (TIMED_OUT,))

_ACTIONS = (_CHAT_ACTION, _MCP_ACTION)

#: Gateway status → the (front, back) paths that end in it. ``pending_approval`` and
#: ``approved`` are settled for now (they wait for a person, or for the executor): the steps
#: up to there must be in the log already.
_TABLE: Mapping[str, tuple[tuple[_Segment, _Segment], ...]] = {
    "answered": ((_CHAT_ANSWER, _AUTO),),
    "refused": ((_CHAT_ANSWER, _AUTO), (_CHAT_BLOCKED, _AUTO)),
    "pending_approval": tuple((front, _AWAITING) for front in _ACTIONS),
    "approved": tuple((front, _SIGNED_APPROVED) for front in _ACTIONS),
    "executed": tuple((front, _EXECUTED) for front in _ACTIONS),
    "rejected": tuple(
        (front, back) for front in _ACTIONS for back in (_INTAKE_REJECTED, _SIGNED_REJECTED)
    ),
    "expired": tuple((front, _EXPIRED) for front in _ACTIONS),
    "failed": (
        *((front, _EXECUTION_FAILED) for front in _ACTIONS),
        (_ANY, _DEAD_LETTERED),
    ),
    "timed_out": ((_ANY, _TIMED_OUT),),
}

#: The gateway statuses whose requests are checked; the others are still in flight.
CHECKED_STATUSES: tuple[str, ...] = tuple(_TABLE)


def paths_for(status: str, origin: Origin) -> tuple[Path, ...]:
    """Every path a request of ``origin`` can have taken to ``status`` (empty: not checked)."""
    prefix = (ACCEPTED,) if origin is Origin.GATEWAY else ()
    return tuple(
        Path(
            f"{front.name}/{back.name}" if front.steps else back.name,
            (*prefix, *front.steps, *back.steps),
        )
        for front, back in _TABLE.get(status, ())
        if front.via_gateway or origin is not Origin.GATEWAY
    )


@dataclass(frozen=True)
class SagaVerdict:
    path: str
    missing: tuple[Step, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def check_saga(
    status: str,
    origin: Origin,
    logged: Collection[tuple[str, str]],
    witnessed: Collection[tuple[str, str]] = (),
) -> SagaVerdict | None:
    """Which of its path's steps a settled request lacks in the log.

    ``logged``: the (service, action) pairs of the request in ``audit.records``; ``witnessed``:
    those another consumer of the audit topic saw (the gateway's timeline). None when
    ``status`` is not checked (still in flight, or unknown here).
    """
    paths = paths_for(status, origin)
    if not paths:
        return None
    evidence = {*logged, *witnessed}

    def found(step: Step, pairs: Collection[tuple[str, str]]) -> bool:
        return any(step.matches(service, action) for service, action in pairs)

    def fit(indexed: tuple[int, Path]) -> tuple[int, int, int]:
        index, path = indexed
        unexplained = sum(not found(step, evidence) for step in path.steps)
        # Fewest steps without evidence first; then the path that explains most of what
        # happened; then the table's order, so the choice is stable.
        return (unexplained, -(len(path.steps) - unexplained), index)

    _, best = min(enumerate(paths), key=fit)
    missing = tuple(step for step in best.steps if not found(step, logged))
    return SagaVerdict(best.name, missing)
