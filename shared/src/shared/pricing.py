"""What a request's model tokens cost: the price table (``PRICING_MODELS``) and the metrics.

Prices are USD per 1,000 tokens, per model: ``embedding_per_1k`` for embedding calls,
``input_per_1k`` / ``output_per_1k`` for chat calls. The defaults hold the models the platform
is configured for out of the box at the provider's list prices as of :data:`PRICES_AS_OF`
(https://openai.com/api/pricing/), and the offline models at zero: their tokens are counted
and reported, they just cost nothing. A deployment sets its own table as JSON::

    PRICING_MODELS='{"gpt-4.1-mini": {"input_per_1k": 0.0004, "output_per_1k": 0.0016}}'

which replaces the defaults. A malformed table (not JSON, an unknown field, a negative or
non-numeric price) fails at start-up with the offending field's path in the message
(``models.gpt-4.1-mini.input_per_1k``). A model missing from the table costs 0 and its
items say ``priced: false``, so a report can name what it could not price.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts import CostItem, RequestCost

__all__ = [
    "DEFAULT_PRICES",
    "PRICES_AS_OF",
    "CostMetrics",
    "ModelPrice",
    "PricingSettings",
    "estimate_tokens",
]

PRICES_AS_OF = "2025-04"


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    embedding_per_1k: float = Field(default=0.0, ge=0, description="USD per 1K embedded tokens.")
    input_per_1k: float = Field(default=0.0, ge=0, description="USD per 1K chat input tokens.")
    output_per_1k: float = Field(default=0.0, ge=0, description="USD per 1K chat output tokens.")


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4.1": ModelPrice(input_per_1k=0.002, output_per_1k=0.008),
    "gpt-4.1-mini": ModelPrice(input_per_1k=0.0004, output_per_1k=0.0016),
    "text-embedding-3-small": ModelPrice(embedding_per_1k=0.00002),
    "text-embedding-3-large": ModelPrice(embedding_per_1k=0.00013),
    # Offline models run in process: free, but their tokens are still counted.
    "extractive-v3": ModelPrice(),
    "all-MiniLM-L6-v2-int8": ModelPrice(),
}


class PricingSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRICING_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    models: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="Model name -> prices per 1K tokens (JSON); replaces the defaults.",
    )

    def price(self, model: str) -> ModelPrice | None:
        """The model's prices; a name with a variant suffix (``all-MiniLM-L6-v2-int8@256``)
        falls back to its base name."""
        found = self.models.get(model)
        if found is None and "@" in model:
            found = self.models.get(model.split("@", 1)[0])
        return found

    def chat(self, model: str, input_tokens: int, output_tokens: int) -> CostItem:
        price = self.price(model)
        usd = 0.0
        if price is not None:
            usd = (input_tokens * price.input_per_1k + output_tokens * price.output_per_1k) / 1000
        return CostItem(
            model=model,
            operation="chat",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usd=round(usd, 9),
            priced=price is not None,
        )

    def embedding(self, model: str, tokens: int) -> CostItem:
        price = self.price(model)
        usd = tokens * price.embedding_per_1k / 1000 if price is not None else 0.0
        return CostItem(
            model=model,
            operation="embeddings",
            input_tokens=tokens,
            output_tokens=0,
            usd=round(usd, 9),
            priced=price is not None,
        )

    @staticmethod
    def total(items: Iterable[CostItem]) -> RequestCost:
        kept = tuple(i for i in items if i.input_tokens or i.output_tokens)
        return RequestCost(usd=round(sum(i.usd for i in kept), 9), items=kept)


_TOKENISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` for models that have no tokenizer of their own (the offline ones).

    Words and punctuation marks, with long words counted per four characters: within about
    10% of a BPE tokenizer on English support text, and, unlike a character count, stable under
    whitespace changes.
    """
    return sum(max(1, (len(t) + 3) // 4) for t in _TOKENISH.findall(text))


class CostMetrics:
    """``platform_request_cost_usd`` (per request) and ``platform_cost_usd_total{tenant,model}``.

    ``tenant`` is a bounded label: tenants are configured, not user input, and past
    ``max_tenants`` distinct values the rest are counted as ``other`` so a flood of tenant ids
    cannot blow up the series count. No user id or request id is ever a label.
    """

    def __init__(self, meter: metrics.Meter, *, max_tenants: int = 200) -> None:
        self.per_request = meter.create_histogram(
            "platform_request_cost_usd",
            description="Cost of one request's model and embedding tokens, in USD.",
            explicit_bucket_boundaries_advisory=[
                0.0,
                0.00001,
                0.0001,
                0.0005,
                0.001,
                0.002,
                0.005,
                0.01,
                0.02,
                0.05,
                0.1,
                0.5,
            ],
        )
        self.totals = meter.create_counter(
            "platform_cost_usd", description="USD spent on model tokens, by tenant and model."
        )
        self._max_tenants = max_tenants
        self._tenants: set[str] = set()

    def _tenant(self, tenant: str) -> str:
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < self._max_tenants:
            self._tenants.add(tenant)
            return tenant
        return "other"

    def record(self, tenant: str, cost: RequestCost) -> None:
        label = self._tenant(tenant)
        self.per_request.record(cost.usd, {"tenant": label})
        for item in cost.items:
            self.totals.add(item.usd, {"tenant": label, "model": item.model})
