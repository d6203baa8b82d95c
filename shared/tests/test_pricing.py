"""The price table: costs per model and operation, the offline models at zero with their
tokens counted, and a malformed table refused at start-up naming the field."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from shared.pricing import CostMetrics, ModelPrice, PricingSettings, estimate_tokens
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_chat_and_embedding_costs_per_1k_tokens() -> None:
    table = PricingSettings(
        models={
            "big": ModelPrice(input_per_1k=0.002, output_per_1k=0.008),
            "emb": ModelPrice(embedding_per_1k=0.0001),
        }
    )
    chat = table.chat("big", 1500, 250)
    assert chat.usd == pytest.approx(0.003 + 0.002)
    assert table.embedding("emb@256", 2000).usd == pytest.approx(0.0002)  # variant suffix
    cost = table.total([chat, table.embedding("emb", 2000)])
    assert cost.usd == pytest.approx(0.0052)
    assert [i.operation for i in cost.items] == ["chat", "embeddings"]


def test_offline_models_are_free_but_their_tokens_count() -> None:
    table = PricingSettings()
    item = table.chat("extractive-v3", 800, 60)
    assert item.usd == 0 and item.priced
    assert (item.input_tokens, item.output_tokens) == (800, 60)


def test_unknown_model_costs_zero_and_says_so() -> None:
    item = PricingSettings().chat("mystery-model", 100, 10)
    assert item.usd == 0 and item.priced is False


def test_zero_token_items_are_left_out() -> None:
    table = PricingSettings()
    assert table.total([table.embedding("text-embedding-3-small", 0)]).items == ()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"gpt-4.1": {"input_per_1k": "cheap"}}', "input_per_1k"),
        ('{"gpt-4.1": {"output_per_1k": -1}}', "output_per_1k"),
        ('{"gpt-4.1": {"inptu_per_1k": 0.1}}', "inptu_per_1k"),
    ],
)
def test_malformed_table_fails_at_start_up_naming_the_field(
    raw: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRICING_MODELS", raw)
    with pytest.raises(ValidationError, match=rf"models\.`gpt-4\.1`\.{field}"):
        ServiceSettings()


def test_table_that_is_not_json_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICING_MODELS", "gpt-4.1=0.002")
    with pytest.raises(SettingsError, match='"models"'):
        ServiceSettings()


def test_estimate_tokens_counts_words_and_punctuation() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("How long is the warranty?") == 7  # warranty: 2
    assert estimate_tokens("internationalisation") == 5
    assert estimate_tokens("a  b\n\nc") == estimate_tokens("a b c")


def test_cost_metrics_names_and_bounded_tenant_label() -> None:
    registry = CollectorRegistry()
    provider = MeterProvider(
        metric_readers=[PrometheusMetricReader(registry=registry, disable_target_info=True)]
    )
    costs = CostMetrics(provider.get_meter("t"), max_tenants=1)
    table = PricingSettings()
    costs.record("acme", table.total([table.chat("gpt-4.1", 1000, 0)]))
    costs.record("globex", table.total([table.chat("gpt-4.1", 1000, 0)]))
    text = generate_latest(registry).decode()
    assert "platform_request_cost_usd_bucket" in text
    assert 'platform_cost_usd_total{model="gpt-4.1"' in text
    assert 'tenant="acme"' in text and 'tenant="other"' in text
    assert 'tenant="globex"' not in text


def test_enduser_pseudonym_is_stable_keyed_and_names_no_one() -> None:
    from shared.principal import Principal

    casey = Principal(user_id="casey.customer", tenant_id="harborpine")
    first = casey.pseudonym(b"k1")
    assert first == casey.pseudonym(b"k1") and len(first) == 24
    assert first != casey.pseudonym(b"k2")
    assert first != casey.model_copy(update={"user_id": "sam"}).pseudonym(b"k1")
    assert "casey" not in first
