"""The saga's metrics, observed where the gateway learns a request settled.

- ``platform.saga.accepted`` (``platform_saga_accepted_total``): requests the gateway took on,
  counted by the process whose insert created the request's row (a POST admitted as a new
  attempt, or the first audit step of a request an upstream system published itself);
- ``platform.saga.duration`` (``platform_saga_duration_seconds{outcome}``): from acceptance
  (the row's ``created_at``) to the moment the request *settled*, i.e. first reached a status a
  waiting caller stops at (``status.SETTLED``: final, or handed to a human);
- ``platform.saga.requests`` (``platform_saga_requests_total{outcome}``): the same event,
  counted.

Exactly once per request, with any number of replicas: the process observes whose database
transaction moved the row from an open status into a settled one (the repository locks the
row, reads its status before the change and reports the transition after the commit). Later
moves of a settled row (pending_approval to executed) are not a second settlement.

``outcome`` is the status it settled in, folded into :data:`OUTCOMES`: ``rejected`` (an action
the approver refused at intake, invalid) counts as ``refused``; ``approved`` or ``expired``
seen first (their ``approval.pending`` step arrived later) count as ``pending_approval``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics

from .status import RequestStatus

__all__ = ["OUTCOMES", "SagaMetrics", "Settlement", "outcome_of"]

OUTCOMES = ("answered", "refused", "pending_approval", "executed", "failed", "timed_out")

_OUTCOME_OF = {
    RequestStatus.ANSWERED: "answered",
    RequestStatus.REFUSED: "refused",
    RequestStatus.REJECTED: "refused",
    RequestStatus.PENDING_APPROVAL: "pending_approval",
    RequestStatus.APPROVED: "pending_approval",
    RequestStatus.EXPIRED: "pending_approval",
    RequestStatus.EXECUTED: "executed",
    RequestStatus.FAILED: "failed",
    RequestStatus.TIMED_OUT: "timed_out",
}

#: Seconds; answers take well under a second to a few seconds, timeouts end at the answer
#: deadline (30 s by default), so the top buckets catch the slow tail up to two minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)


def outcome_of(status: RequestStatus) -> str:
    return _OUTCOME_OF[status]


@dataclass(frozen=True)
class Settlement:
    """A request that settled in one committed transaction, and how long it took."""

    status: RequestStatus
    seconds: float


class SagaMetrics:
    def __init__(self, meter: metrics.Meter) -> None:
        self._accepted = meter.create_counter(
            "platform.saga.accepted",
            unit="{request}",
            description="Requests accepted (a new request row), once per request.",
        )
        self._requests = meter.create_counter(
            "platform.saga.requests",
            unit="{request}",
            description="Requests settled, by outcome, once per request.",
        )
        self._duration = meter.create_histogram(
            "platform.saga.duration",
            unit="s",
            description="Time from accepted to settled, by outcome.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    def accepted(self, count: int = 1) -> None:
        if count:
            self._accepted.add(count)

    def settled(self, settlements: list[Settlement]) -> None:
        for item in settlements:
            outcome = {"outcome": outcome_of(item.status)}
            self._requests.add(1, outcome)
            self._duration.record(max(0.0, item.seconds), outcome)
