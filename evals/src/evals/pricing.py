"""What a case's model tokens cost, from a per-model price table.

Tokens come from the request's trace (``gen_ai.usage.*`` on the agent's ``chat`` spans), so
every model the agent's chain used is counted, fallbacks included. Prices are USD per million
tokens. The shipped table holds the models the agent is configured for out of the box
(``AGENT_MODEL__SMALL_MODEL`` / ``LARGE_MODEL`` defaults) at the provider's published list
prices as of :data:`PRICES_AS_OF` (OpenAI API pricing page, https://openai.com/api/pricing/);
a deployment on other models or negotiated rates passes its own table with ``--prices``.
Models of the ``offline`` provider run in process and cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_PRICES",
    "FREE_PROVIDERS",
    "PRICES_AS_OF",
    "ModelUsage",
    "Price",
    "PriceTable",
    "load_prices",
]

PRICES_AS_OF = "2025-04"


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input_per_million: float
    output_per_million: float


@dataclass(frozen=True)
class ModelUsage:
    """Tokens one model spent on one case."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
}

#: Providers whose models run locally: no per-token price, whatever the model is called.
FREE_PROVIDERS = frozenset({"offline"})


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]
    source: str

    def cost(self, usage: Sequence[ModelUsage]) -> tuple[float, list[str]]:
        """USD for ``usage``, and the models that spent tokens but have no price (their
        tokens are counted, their cost is not: the report names them)."""
        total = 0.0
        unpriced: list[str] = []
        for u in usage:
            if u.provider in FREE_PROVIDERS:
                continue
            price = self.prices.get(u.model)
            if price is None:
                if u.input_tokens or u.output_tokens:
                    unpriced.append(u.model)
                continue
            total += (
                u.input_tokens * price.input_per_million
                + u.output_tokens * price.output_per_million
            ) / 1_000_000
        return total, unpriced


def load_prices(path: Path | None) -> PriceTable:
    """The default table, or one from a JSON file ``{"model": {"input": 2.0, "output": 8.0}}``
    (USD per million tokens) that replaces it."""
    if path is None:
        return PriceTable(
            DEFAULT_PRICES, f"list prices as of {PRICES_AS_OF} (evals/src/evals/pricing.py)"
        )
    raw = json.loads(path.read_text(encoding="utf-8"))
    try:
        prices = {
            str(model): Price(float(p["input"]), float(p["output"])) for model, p in raw.items()
        }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f'{path}: expected {{"model": {{"input": usd, "output": usd}}}} ({exc!r})'
        ) from None
    return PriceTable(prices, str(path))
