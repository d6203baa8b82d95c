"""Routing: is a request routine (small model) or high-risk (large model)?

Rules decide first, because they are free, instant and explainable: a request for a write
action, an amount above the threshold, a sensitive topic (fraud, legal, safety, personal
data, account security) or a suspicious input-guardrail score makes a request high-risk.
When no rule fires and a classifier is configured, the small model classifies; if it cannot
answer, the request stays routine (the large model is the costly choice, not the safe
default: routine requests still pass every guardrail).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from shared.contracts import ContextRetrieved

from .intents import amount_in, detect_intent
from .models import ModelError
from .settings import RoutingSettings

__all__ = ["Route", "RouteClassifier", "Router"]

log = logging.getLogger(__name__)

RouteName = Literal["routine", "high_risk"]

_SENSITIVE = re.compile(
    r"\b(?P<topic>fraud\w*|chargeback\w*|scam\w*|stolen|hack\w*|account takeover|"
    r"unauthori[sz]ed|sim swap|lawyer|lawsuit|legal action|sue|court|ombudsman|gdpr|dsar|"
    r"data (access|protection|breach)|delete my (data|account)|injur\w*|fire|burn\w*|"
    r"gas (leak|smell)|smell\w* gas|leak\w* gas|carbon monoxide|poison\w*|police|"
    r"harass\w*|discriminat\w*|threat\w*|suicid\w*|self-harm)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Route:
    name: RouteName
    reason: str
    by: Literal["rules", "model"] = "rules"


class RouteClassifier(Protocol):
    async def classify(self, message: str) -> RouteName: ...


class Router:
    def __init__(self, settings: RoutingSettings, classifier: RouteClassifier | None = None):
        self._settings = settings
        self._classifier = classifier if settings.classifier == "model" else None

    def by_rules(self, event: ContextRetrieved) -> Route | None:
        request = event.request
        message = request.message
        intent = detect_intent(message, user_id=request.principal.user_id)
        if intent is not None:
            return Route("high_risk", f"action requested: {intent.tool} ({intent.risk.value})")
        amount = amount_in(message)
        if amount and Decimal(amount[0]) > Decimal(str(self._settings.high_risk_amount)):
            return Route("high_risk", f"amount {amount[0]} {amount[1]} above threshold")
        topic = _SENSITIVE.search(message)
        if topic:
            return Route("high_risk", f"sensitive topic: {topic.group('topic').lower()}")
        verdict = event.input_verdict
        if verdict is not None and verdict.score > self._settings.injection_score:
            return Route("high_risk", f"input guardrail score {verdict.score:.2f}")
        return None

    async def route(self, event: ContextRetrieved) -> Route:
        decided = self.by_rules(event)
        if decided is not None:
            return decided
        if self._classifier is None:
            return Route("routine", "no risk rule matched")
        try:
            name = await self._classifier.classify(event.request.message)
        except ModelError as exc:
            log.warning("route classifier unavailable (%s); routine by default", exc.reason)
            return Route("routine", f"no risk rule matched; classifier failed ({exc.reason})")
        return Route(name, "classified by the small model", by="model")
