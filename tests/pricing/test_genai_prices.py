"""The shipped prices are genai-prices' (pinned 0.2.3, bundled data, no network), converted
exactly: tiers, service tiers, cache TTLs, dated snapshots (issue 11 item 4)."""

from __future__ import annotations

import dataclasses
import math
import socket
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import genai_prices.data
import pytest
from genai_prices import data_snapshot

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.pricing import PriceTable, Usage, load_default_prices
from keeptrusts_authz.pricing import genai as genai_source


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.defaults()


def _reference_micros(table: PriceTable, name: str, usage: Usage, tier: str | None = None) -> int:
    """genai-prices' own calculation (Decimal USD), rounded up to a micro like ours."""
    source = table.source(name)  # "genai-prices 0.2.3 '<id>'"
    model_id = source.split("'")[1]
    provider = table.models[name].provider
    assert provider is not None
    calc = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
        ),
        model_id,
        provider_id=provider,
        price_context={"service_tier": tier} if tier else None,
    )
    return math.ceil(calc.total_price * 1_000_000)


USAGES = [
    Usage(1_000, 500),
    Usage(123_457, 9_999, 23_456),
    Usage(250_001, 77, 1_000, 0),  # above a 200k long-context threshold
]


def test_pinned_version_and_every_price_from_it(table: PriceTable) -> None:
    assert genai_prices.__version__ == "0.2.3" == table.genai_version
    shipped = load_default_prices()
    assert table.prices_taken == shipped.taken == genai_source.data_date()
    for name in table:
        assert table.source(name).startswith("genai-prices 0.2.3 "), name


@pytest.mark.parametrize("usage", USAGES, ids=["small", "cached", "long"])
def test_costs_equal_genai_prices_own_calculation(table: PriceTable, usage: Usage) -> None:
    """Every shipped model, every service tier: integer micros == ceil(genai-prices' Decimal)."""
    checked = 0
    for name in table:
        price = table.models[name]
        for tier in (None, *price.service_tiers):
            ours = table.cost_micros(name, usage, service_tier=tier)
            assert ours == _reference_micros(table, name, usage, tier), (name, tier)
            checked += 1
    assert checked > 40


def test_anthropic_cache_write_ttls_equal_genai_prices(table: PriceTable) -> None:
    usage = Usage.from_anthropic(1_000, 100, 200, 300, 100)
    for name in ("claude-sonnet-4", "claude-opus-4-5", "claude-haiku-4-5", "claude-sonnet-4-5"):
        assert table.cost_micros(name, usage) == _reference_micros(table, name, usage), name
    # claude-sonnet-4 (Anthropic's input_tokens excludes cache reads and writes):
    # 1000 x 3 + 200 x 0.3 + 200 x 3.75 (5m) + 100 x 6 (1h) + 100 x 15
    assert table.cost_micros("claude-sonnet-4", usage) == 5_910


def test_snapshot_specific_price_and_no_date_stripping(table: PriceTable) -> None:
    old = table.resolve("gpt-4o-2024-05-13")
    assert (old.name, old.via) == ("gpt-4o-2024-05-13", "exact")
    assert (old.price.input_per_1m, old.price.output_per_1m) == (Decimal(5), Decimal(15))
    assert table.cost_micros("gpt-4o-2024-05-13", 1000, 1000) == 20_000
    assert table.cost_micros("gpt-4o", 1000, 1000) == 12_500
    # The snapshots genai-prices lists for gpt-4o are explicit aliases...
    assert table.resolve("gpt-4o-2024-08-06").via == "alias"
    # ...and a date it does not list is unknown, never gpt-4o.
    for name in ("gpt-4o-2024-05-14", "gpt-4o-2099-01-01", "claude-sonnet-4-5-20990101"):
        assert table.lookup(name) is None, name


def test_long_context_is_a_cliff_on_the_whole_prompt(table: PriceTable) -> None:
    at, above = 200_000, 200_001
    assert table.cost_micros("claude-sonnet-4-5", at, 0) == at * 3
    assert table.cost_micros("claude-sonnet-4-5", above, 0) == above * 6
    assert table.cost_micros("claude-sonnet-4-5", above, 10) == above * 6 + 225
    # Cache reads count towards the threshold (they are part of the prompt).
    assert table.cost_micros("claude-sonnet-4-5", above, 0, above) == -(-above * 6 // 10)
    # The reservation: the long-context rates when the input bound is above the threshold
    # (every prompt token at the 1h cache-write price, the highest: $12 above 200k).
    assert table.worst_case_micros("claude-sonnet-4-5", above, 0) == above * 12
    assert table.worst_case_micros("claude-sonnet-4-5", at, 0) == at * 6


def test_service_tiers(table: PriceTable) -> None:
    assert table.cost_micros("gpt-4o", 1000, 500, service_tier="priority") == 12_750
    for standard in (None, "", "default", "auto", "DEFAULT"):
        assert table.cost_micros("gpt-4o", 1000, 500, service_tier=standard) == 7_500
    # flex is cheaper: o4-mini flex $0.55 / $2.20 (cached 0.138: exact, rounded up at the end).
    assert table.cost_micros("o4-mini", 1000, 1000, service_tier="flex") == 2_750
    assert table.cost_micros("o4-mini", 1000, 0, 1000, service_tier="flex") == 138
    # A tier the table does not know is billed at the model's highest prices.
    assert table.cost_micros("gpt-4o", 1000, 500, service_tier="scale") == 12_750
    assert table.cost_micros("o1", 1000, 500, service_tier="priority") == table.cost_micros(
        "o1", 1000, 500
    )


def test_reservation_covers_every_reachable_tier(table: PriceTable) -> None:
    standard = table.worst_case_micros("gpt-4o", 1000, 1000, "default")
    assert table.worst_case_micros("gpt-4o", 1000, 1000, "priority") == 21_250 > standard
    # Asking for flex can still be served (and billed) at standard.
    assert table.worst_case_micros("o4-mini", 1000, 1000, "flex") == table.worst_case_micros(
        "o4-mini", 1000, 1000, "default"
    )
    # Asking for none (or `auto`) leaves it to the account's default, which may be priority
    # (review #5): every tier is reachable.
    assert table.worst_case_micros("gpt-4o", 1000, 1000) == 21_250
    assert table.worst_case_micros("gpt-4o", 1000, 1000, "auto") == 21_250
    assert table.worst_case_micros("gpt-4o", 1000, 1000, "no-such-tier") == 21_250
    for name in table:
        for tier in (None, *table.models[name].service_tiers):
            for usage in USAGES:
                worst = table.worst_case_micros(name, usage.input_tokens, usage.output_tokens, tier)
                assert table.cost_micros(name, usage, service_tier=tier) <= worst, (name, tier)


def test_no_network_and_no_updater_when_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table reads the bundled data only: with every socket refused it still loads, no
    update thread starts, and the genai-prices snapshot stays the bundled one."""

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("network access while loading prices")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    threads = threading.active_count()
    load_default_prices.cache_clear()
    genai_source._providers.cache_clear()
    try:
        table = PriceTable.defaults()
        assert table.cost_micros("gpt-4o", 1000, 1000) == 12_500
        PriceTable.from_config(parse_config({}))
    finally:
        load_default_prices.cache_clear()
    assert threading.active_count() == threads
    assert data_snapshot._custom_snapshot is None


def test_config_prices_tiers_of_its_own() -> None:
    cfg = parse_config(
        {
            "pricing": {
                "models": {
                    "in-house": {
                        "input_per_1m": "1",
                        "output_per_1m": "2",
                        "max_output_tokens": 100,
                        "long_context": {
                            "above_input_tokens": 1000,
                            "input_per_1m": "3",
                        },
                        "service_tiers": {
                            "priority": {
                                "input_per_1m": "10",
                                "long_context": {"above_input_tokens": 1000, "input_per_1m": "30"},
                            },
                            "flex": {"output_per_1m": "1"},
                        },
                    }
                }
            }
        }
    )
    t = PriceTable.from_config(cfg)
    assert t.source("in-house") == "config override (pricing.models.in-house)"
    assert t.cost_micros("in-house", 1000, 10) == 1000 + 20
    assert t.cost_micros("in-house", 1001, 10) == 3003 + 20  # long: input 3, output stays 2
    assert t.cost_micros("in-house", 1000, 10, service_tier="priority") == 10_000 + 20
    assert t.cost_micros("in-house", 1001, 10, service_tier="priority") == 30_030 + 20
    # flex keeps the model's long-context input price above the threshold.
    assert t.cost_micros("in-house", 1001, 10, service_tier="flex") == 3003 + 10
    assert t.worst_case_micros("in-house", 1001, 10, "priority") == 30_030 + 20


_REAL_FIND = genai_source._find


def _without_output_price(model_id: str) -> Any:
    """gpt-4o's genai-prices entry renamed `model_id`, with an input price and no output price."""
    from genai_prices.types import ModelPrice as GenaiModelPrice

    real = _REAL_FIND("openai", "gpt-4o")
    return dataclasses.replace(
        real, id=model_id, prices=GenaiModelPrice(input_mtok=Decimal(1)), price_variants=[]
    )


def test_a_missing_output_price_is_a_load_error_except_for_embeddings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review #10: a chat model whose data lost its output price was billed 0 for output."""
    monkeypatch.setattr(genai_source, "_find", lambda provider, ref: _without_output_price(ref))
    with pytest.raises(genai_source.GenaiPricesError, match="no output price"):
        genai_source.model_prices("openai", "gpt-4o")
    embedding = genai_source.model_prices("openai", "text-embedding-3-small")
    assert embedding.prices["output_per_1m"] == Decimal(0)


def test_every_shipped_chat_model_has_an_output_price_in_the_data(table: PriceTable) -> None:
    """Independent of the conversion and of calc_price (which also takes a missing output price
    as 0): genai-prices' raw entry of each shipped non-embedding model names an output price."""
    checked = 0
    for name in table:
        provider = table.models[name].provider
        model_id = table.source(name).split("'")[1]
        (raw,) = [
            m
            for p in genai_prices.data.providers
            if p.id == provider
            for m in p.models
            if m.id == model_id
        ]
        if "embedding" in model_id:
            continue
        assert raw.get_prices(datetime.now(tz=UTC)).output_mtok is not None, name
        assert table.models[name].output_per_1m > 0, name
        checked += 1
    assert checked > 10
