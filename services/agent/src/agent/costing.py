"""What a request cost: the query's embedding (from the retriever's stats) plus every model
call the agent made, at the price table's rates (``shared.pricing``)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.contracts import ContextRetrieved, RequestCost
from shared.pricing import PricingSettings

from .models import Usage

__all__ = ["request_cost"]


def request_cost(
    pricing: PricingSettings, event: ContextRetrieved, chat: Sequence[tuple[str, Usage]]
) -> RequestCost:
    items = [pricing.embedding(event.stats.embedding_model, event.stats.embedding_tokens)]
    items += [pricing.chat(model, u.input_tokens, u.output_tokens) for model, u in chat]
    return pricing.total(items)
