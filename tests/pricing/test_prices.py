"""Pricing: the shipped table, name resolution, exact integer-micro costs, config overrides."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
import yaml

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.models import ModelPrice
from keeptrusts_authz.pricing import (
    PriceTable,
    PricingError,
    ResolvedModel,
    UnknownModel,
    Usage,
    cost_micros_for,
    load_default_prices,
    output_bound_for,
)


def _reserve(
    table: PriceTable, model: str | ResolvedModel, input_tokens: int, bound: int | None = None
) -> int:
    """The reservation rule admission uses: worst-case prompt price, output capped by the model
    (at the standard tier, named: no tier reaches every tier, see test_genai_prices)."""
    resolved = model if isinstance(model, ResolvedModel) else table.resolve(model)
    return table.worst_case_micros(resolved, input_tokens, resolved.output_bound(bound), "default")


PRICE_FIELDS = ("input_per_1m", "output_per_1m", "cached_input_per_1m")

EXPECTED_MODELS = {
    "gpt-4o",
    "gpt-4o-2024-05-13",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-3-5-haiku",
    "claude-3-7-sonnet",
    "claude-sonnet-4",
    "claude-opus-4",
    "claude-opus-4-1",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
}


def table_for(pricing: dict[str, Any] | None = None, **top: Any) -> PriceTable:
    data: dict[str, Any] = dict(top)
    if pricing is not None:
        data["pricing"] = pricing
    return PriceTable.from_config(parse_config(data))


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.defaults()


# -- the shipped data file --------------------------------------------------------------------


def test_shipped_file_holds_limits_only_and_is_dated() -> None:
    """prices.yaml owns the limits; every shipped price comes from genai-prices (one owner)."""
    raw = yaml.safe_load(
        resources.files("keeptrusts_authz.pricing").joinpath("prices.yaml").read_text("utf-8")
    )
    assert isinstance(raw["limits_taken"], str)
    assert date.fromisoformat(raw["limits_taken"]) == load_default_prices().limits_taken
    assert raw["currency"] == "USD"
    assert set(raw["models"]) == EXPECTED_MODELS
    for name, entry in raw["models"].items():
        assert entry["provider"] in ("openai", "anthropic"), name
        assert isinstance(entry["max_output_tokens"], int), name
        assert isinstance(entry["aliases"], list), name
        for f in (*PRICE_FIELDS, "cache_write_per_1m", "cache_write_1h_per_1m"):
            assert f not in entry, f"{name}.{f}: prices come from genai-prices"


def test_shipped_table_loads(table: PriceTable) -> None:
    assert set(table) == EXPECTED_MODELS
    assert len(table) == len(EXPECTED_MODELS)
    assert table.prices_taken == load_default_prices().taken
    assert table.genai_version == "0.2.3"
    for name, price in table.models.items():
        assert table.source(name).startswith("genai-prices 0.2.3 "), name
        assert isinstance(price.input_per_1m, Decimal), name
        assert price.max_output_tokens > 0, name
    assert table.models["text-embedding-3-small"].output_per_1m == 0


def test_well_known_list_prices(table: PriceTable) -> None:
    gpt4o = table.models["gpt-4o"]
    assert (gpt4o.input_per_1m, gpt4o.cached_input_per_1m, gpt4o.output_per_1m) == (
        Decimal("2.50"),
        Decimal("1.25"),
        Decimal("10.00"),
    )
    sonnet = table.models["claude-sonnet-4-5"]
    assert (sonnet.input_per_1m, sonnet.output_per_1m) == (Decimal(3), Decimal(15))


# -- resolution -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "name", "via"),
    [
        ("gpt-4o", "gpt-4o", "exact"),
        ("GPT-4o", "gpt-4o", "exact"),
        ("gpt-4o-mini", "gpt-4o-mini", "exact"),
        ("gpt-4o-2024-08-06", "gpt-4o", "alias"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "alias"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", "alias"),
        ("o3-2025-04-16", "o3", "alias"),
        ("o3-mini-2025-01-31", "o3-mini", "alias"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini", "alias"),
        ("gpt-5-chat-latest", "gpt-5", "alias"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4", "alias"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", "alias"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1", "alias"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku", "alias"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku", "alias"),
        ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet", "alias"),
        ("claude-4-sonnet", "claude-sonnet-4", "alias"),
        ("claude-opus-4-0", "claude-opus-4", "alias"),
    ],
)
def test_resolve(table: PriceTable, requested: str, name: str, via: str) -> None:
    resolved = table.resolve(requested)
    assert (resolved.name, resolved.via, resolved.requested) == (name, via, requested)
    assert not resolved.defaulted
    assert resolved.price == table.models[name]


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-audio-preview",  # a longer name is never mapped to a known prefix
        "gpt-4o-mini-tts",
        "gpt-4",
        "claude-sonnet",
        "-latest",
        "",
        "gpt-4o-2024-08",  # not a full date
        "gpt-4o-20240806-extra",
    ],
)
def test_unknown_model_is_blocked(table: PriceTable, model: str) -> None:
    with pytest.raises(UnknownModel) as info:
        table.resolve(model)
    assert info.value.model == model
    assert table.lookup(model) is None
    assert model not in table
    with pytest.raises(UnknownModel):
        table.cost_micros(model, 1, 1)
    with pytest.raises(UnknownModel):
        _reserve(table, model, 1, 1)


def test_unknown_model_message_is_bounded() -> None:
    err = UnknownModel("x" * 10_000)
    assert len(str(err)) < 200
    assert err.model == "x" * 10_000


def test_unknown_model_default_policy() -> None:
    t = table_for({"unknown_model": "default", "default_model": "gpt-4o-mini"})
    resolved = t.resolve("some-new-model")
    assert resolved.defaulted and resolved.via == "default"
    assert (resolved.name, resolved.requested) == ("gpt-4o-mini", "some-new-model")
    assert t.cost_micros("some-new-model", 1000, 1000) == t.cost_micros("gpt-4o-mini", 1000, 1000)
    assert t.lookup("some-new-model") is None  # lookup never defaults
    assert not t.resolve("gpt-4o").defaulted


def test_default_model_may_be_a_snapshot_or_alias() -> None:
    t = table_for({"unknown_model": "default", "default_model": "claude-4-sonnet"})
    assert t.resolve("mystery").name == "claude-sonnet-4"


def test_default_model_must_be_priced() -> None:
    with pytest.raises(PricingError) as info:
        table_for({"unknown_model": "default", "default_model": "gpt-9"})
    assert info.value.errors == [
        "pricing.default_model: unknown model 'gpt-9' (not in the price table)"
    ]


# -- cost -------------------------------------------------------------------------------------


def test_one_token_of_a_cheap_model_costs_exactly_one_micro(table: PriceTable) -> None:
    # 1 token of gpt-5-nano input = 0.05 micros -> rounded UP to 1 micro, never 0.
    assert table.cost_micros("gpt-5-nano", 1, 0) == 1
    assert table.cost_micros("text-embedding-3-small", 1, 0) == 1
    # 1 cached token of gpt-5-nano = 0.005 micros -> 1.
    assert table.cost_micros("gpt-5-nano", 1, 0, cached_tokens=1) == 1
    assert table.cost_micros("gpt-5-nano", 0, 0) == 0


def test_rounding_is_up_to_the_next_micro_not_nearest(table: PriceTable) -> None:
    # 21 input tokens of gpt-5-nano = 1.05 micros -> 2; 20 tokens = exactly 1.
    assert table.cost_micros("gpt-5-nano", 20, 0) == 1
    assert table.cost_micros("gpt-5-nano", 21, 0) == 2
    # 39 tokens = 1.95 -> 2, 40 = exactly 2.
    assert table.cost_micros("gpt-5-nano", 39, 0) == 2
    assert table.cost_micros("gpt-5-nano", 40, 0) == 2


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "cached", "expected"),
    [
        # 1M input + 1M output = input price + output price, in micros.
        ("gpt-4o", 1_000_000, 1_000_000, 0, 12_500_000),
        ("claude-opus-4", 1_000_000, 1_000_000, 0, 90_000_000),
        # 1000 in (200 cached) + 500 out on gpt-4o: 800*2.5 + 200*1.25 + 500*10 = 7250.
        ("gpt-4o", 1000, 500, 200, 7250),
        # The same without the cache: 1000*2.5 + 500*10 = 7500.
        ("gpt-4o", 1000, 500, 0, 7500),
        # gpt-4o-mini: 1234*0.15 + 567*0.60 = 185.1 + 340.2 = 525.3 -> 526.
        ("gpt-4o-mini", 1234, 567, 0, 526),
        # claude-sonnet-4: 10_000 in (4_000 cache reads) + 2_000 out:
        # 6000*3 + 4000*0.3 + 2000*15 = 18000 + 1200 + 30000 = 49200.
        ("claude-sonnet-4", 10_000, 2_000, 4_000, 49_200),
        # Embeddings: output is free.
        ("text-embedding-3-large", 100_000, 0, 0, 13_000),
        # A dated snapshot costs what its model costs.
        ("gpt-4o-2024-08-06", 1000, 500, 200, 7250),
    ],
)
def test_exact_costs(
    table: PriceTable, model: str, input_tokens: int, output_tokens: int, cached: int, expected: int
) -> None:
    cost = table.cost_micros(model, input_tokens, output_tokens, cached)
    assert type(cost) is int
    assert cost == expected
    assert table.cost_micros(model, Usage(input_tokens, output_tokens, cached)) == expected


def test_cached_tokens_fall_back_to_the_input_price_when_no_cached_price() -> None:
    price = ModelPrice(input_per_1m=Decimal("2"), output_per_1m=Decimal("4"), max_output_tokens=10)
    assert cost_micros_for(price, 100, 10, cached_tokens=60) == 100 * 2 + 10 * 4


def test_large_counts_stay_exact_integers(table: PriceTable) -> None:
    # 10^12 tokens would lose precision in a float-based computation (and a ridiculous bill).
    cost = table.cost_micros("gpt-4o-mini", 10**12 + 1, 10**12 + 3, 7)
    expected_numerator = (10**12 + 1 - 7) * 150 + 7 * 75 + (10**12 + 3) * 600  # thousandths
    assert cost == -(-expected_numerator // 1000)
    assert type(cost) is int


def test_odd_price_precision_is_exact() -> None:
    t = table_for(
        {
            "models": {
                "odd": {
                    "input_per_1m": "0.000001",
                    "output_per_1m": "3.333333",
                    "cached_input_per_1m": "0.0000003",
                    "max_output_tokens": 100,
                }
            }
        }
    )
    assert t.cost_micros("odd", 1, 0) == 1
    assert t.cost_micros("odd", 1_000_000, 0) == 1
    assert t.cost_micros("odd", 1_000_001, 0) == 2
    assert t.cost_micros("odd", 0, 3) == 10  # 9.999999 -> 10
    assert t.cost_micros("odd", 10_000_000, 0, cached_tokens=10_000_000) == 3


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((-1, 0, 0), ValueError),
        ((0, -1, 0), ValueError),
        ((10, 0, 11), ValueError),  # cached is a subset of input
        ((1.5, 0, 0), TypeError),
        ((True, 0, 0), TypeError),
        (("10", 0, 0), TypeError),
    ],
)
def test_bad_token_counts(table: PriceTable, args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        table.cost_micros("gpt-4o", *args)


def test_usage_from_provider_reports(table: PriceTable) -> None:
    openai = Usage.from_openai(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    assert openai == Usage(1000, 500, 200)
    # Anthropic: input_tokens excludes cache reads (4000) and writes (1000).
    anthropic = Usage.from_anthropic(
        input_tokens=5000,
        output_tokens=2000,
        cache_read_input_tokens=4000,
        cache_creation_input_tokens=1000,
    )
    assert anthropic == Usage(10_000, 2000, 4000, 1000)
    # 5000 input x 3.00 + 4000 cache reads x 0.30 + 1000 cache writes x 3.75 + 2000 output x 15
    assert table.cost_micros("claude-sonnet-4", anthropic) == 15_000 + 1200 + 3750 + 30_000


# -- reservation estimate ---------------------------------------------------------------------


def test_reserve_prices_input_in_full_and_caps_output(table: PriceTable) -> None:
    # gpt-4o: 1000 input at 2.50 + 100 output at 10.00.
    assert _reserve(table, "gpt-4o", 1000, 100) == 2500 + 1000
    # No bound -> the model's maximum (16384 output tokens for gpt-4o).
    assert _reserve(table, "gpt-4o", 1000, None) == 2500 + 16384 * 10
    # A bound above the maximum is capped.
    assert _reserve(table, "gpt-4o", 1000, 10**9) == 2500 + 16384 * 10
    assert _reserve(table, "gpt-5-nano", 1, 0) == 1
    resolved = table.resolve("gpt-4o-2024-08-06")
    assert resolved.output_bound(None) == 16384
    assert resolved.output_bound(50) == 50
    assert _reserve(table, resolved, 1000, 100) == 3500
    assert type(_reserve(table, "claude-opus-4", 123_456, 7_890)) is int


def test_reserve_is_never_below_the_real_cost(table: PriceTable) -> None:
    for model in EXPECTED_MODELS:
        bound = 1000
        reserve = _reserve(table, model, 5000, bound)
        for cached in (0, 2500, 5000):
            assert table.cost_micros(model, 5000, bound, cached) <= reserve, model


def test_module_level_functions_match_the_table(table: PriceTable) -> None:
    price = table.models["o4-mini"]
    assert cost_micros_for(price, 1000, 2000, 100) == table.cost_micros("o4-mini", 1000, 2000, 100)
    assert output_bound_for(price, None) == table.resolve("o4-mini").output_bound(None)


def test_resolved_model_can_be_passed_back(table: PriceTable) -> None:
    resolved = ResolvedModel("gpt-4o", table.models["gpt-4o"])
    assert table.cost_micros(resolved, 1000, 500, 200) == 7250


# -- config overrides and extensions ----------------------------------------------------------


def test_config_override_replaces_a_shipped_model() -> None:
    t = table_for(
        {
            "models": {
                "gpt-4o": {
                    "input_per_1m": "1.00",
                    "output_per_1m": "2.00",
                    "max_output_tokens": 1000,
                }
            }
        }
    )
    assert t.cost_micros("gpt-4o", 1000, 1000) == 3000
    # No cached price in the override: cached tokens cost the (overridden) input price.
    assert t.cost_micros("gpt-4o", 1000, 0, 1000) == 1000
    assert _reserve(t, "gpt-4o", 0) == 2000  # max_output_tokens 1000 * 2.00
    assert t.origin("gpt-4o") == "pricing.models.gpt-4o"
    # The override replaces the shipped entry with its aliases: the snapshot genai-prices names
    # for gpt-4o is no longer priced (no date stripping), until the override lists it.
    assert t.lookup("gpt-4o-2024-08-06") is None
    assert len(t) == len(EXPECTED_MODELS)


def test_config_override_replaces_aliases_too() -> None:
    t = table_for(
        {
            "models": {
                "claude-sonnet-4": {
                    "input_per_1m": "3",
                    "output_per_1m": "15",
                    "max_output_tokens": 64000,
                },
                "claude-4-sonnet": {  # free now that the override dropped the alias
                    "input_per_1m": "1",
                    "output_per_1m": "1",
                    "max_output_tokens": 10,
                },
            }
        }
    )
    assert t.resolve("claude-4-sonnet").name == "claude-4-sonnet"


def test_config_extends_the_table_with_aliases() -> None:
    t = table_for(
        {
            "models": {
                "in-house-llm": {
                    "input_per_1m": "0.30",
                    "output_per_1m": "0.90",
                    "max_output_tokens": 4096,
                    "aliases": ["inhouse", "InHouse-v2"],
                }
            }
        }
    )
    assert len(t) == len(EXPECTED_MODELS) + 1
    assert t.resolve("inhouse").name == "in-house-llm"
    assert t.resolve("inhouse-v2").via == "alias"
    assert t.lookup("in-house-llm-2025-01-01") is None  # no date-suffix stripping
    assert t.cost_micros("inhouse", 1000, 1000) == 1200


def test_include_defaults_false_uses_only_the_config() -> None:
    t = table_for(
        {
            "include_defaults": False,
            "models": {
                "eu-model": {"input_per_1m": "1", "output_per_1m": "2", "max_output_tokens": 8}
            },
        },
        organization={"id": "acme", "currency": "EUR"},
    )
    assert list(t) == ["eu-model"]
    assert t.prices_taken is None
    with pytest.raises(UnknownModel):
        t.resolve("gpt-4o")


def test_shipped_usd_prices_refused_for_another_currency() -> None:
    with pytest.raises(PricingError) as info:
        table_for(None, organization={"id": "acme", "currency": "EUR"})
    assert info.value.errors[0].startswith(
        "pricing.include_defaults: the shipped prices are in USD but organization.currency is EUR"
    )


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (
            {"fast": {"aliases": ["gpt-4o-mini"]}},
            "pricing.models.fast.aliases[0]: alias 'gpt-4o-mini' of model 'fast' collides with "
            "model 'gpt-4o-mini' (shipped default 'gpt-4o-mini')",
        ),
        (
            {"fast": {"aliases": ["claude-4-opus"]}},
            "pricing.models.fast.aliases[0]: alias 'claude-4-opus' of model 'fast' collides with "
            "an alias of model 'claude-opus-4' (shipped default 'claude-opus-4')",
        ),
        (
            {"a": {"aliases": ["shared"]}, "b": {"aliases": ["x", "Shared"]}},
            "pricing.models.b.aliases[1]: alias 'Shared' of model 'b' collides with an alias of "
            "model 'a' (pricing.models.a)",
        ),
        (
            {"claude-4-sonnet": {}},
            "pricing.models.claude-4-sonnet: model name 'claude-4-sonnet' is already an alias of "
            "model 'claude-sonnet-4' (shipped default 'claude-sonnet-4'); override "
            "'claude-sonnet-4' to drop the alias",
        ),
    ],
)
def test_alias_collisions_name_both_models(models: dict[str, Any], expected: str) -> None:
    base = {"input_per_1m": "1", "output_per_1m": "1", "max_output_tokens": 10}
    with pytest.raises(PricingError) as info:
        table_for({"models": {n: {**base, **m} for n, m in models.items()}})
    assert info.value.errors == [expected]


def test_pricing_error_is_a_config_error() -> None:
    from keeptrusts_authz.config import ConfigError

    assert issubclass(PricingError, ConfigError)


def test_no_float_in_the_pricing_package() -> None:
    """Money is integers and Decimals only: no float() calls or float literals in the code."""
    import ast

    pkg = resources.files("keeptrusts_authz.pricing")
    for entry in pkg.iterdir():
        if not entry.name.endswith(".py"):
            continue
        tree = ast.parse(entry.read_text("utf-8"))
        for node in ast.walk(tree):
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), (
                f"{entry.name}:{node.lineno}: float literal"
            )
            if isinstance(node, ast.Name):
                assert node.id != "float", f"{entry.name}:{node.lineno}: float"
            assert not isinstance(node, ast.Div), (
                f"{entry.name}: true division (/) produces floats; use // on integers"
            )
