import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.reconcile import Release, settlement_for
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.wallets.models import SettleRequest

PRICES = PriceTable.from_config(parse_config({}))
AUTHZ = {
    "reservation_id": "r_" + "a" * 24,
    "estimate_micros": "5000",
    "model": "gpt-4o",
    "priced_model": "gpt-4o",
    "api": "openai_chat",
}
USAGE = {
    "usage_found": True,
    "complete": True,
    "input_tokens": 1000,
    "output_tokens": 100,
    "cached_tokens": 200,
    "model": "gpt-4o-2024-08-06",
    "api": "openai",
}


def test_denied_requests_have_nothing_to_settle() -> None:
    assert settlement_for({}, USAGE, 402, PRICES) is None


def test_real_usage_is_charged_exactly() -> None:
    item = settlement_for(AUTHZ, USAGE, 200, PRICES)
    assert isinstance(item, SettleRequest)
    assert not item.estimated
    assert item.cost == PRICES.cost_micros("gpt-4o", 1000, 100, 200)


def test_anthropic_cache_tokens_join_the_prompt_total() -> None:
    usage = {
        **USAGE,
        "api": "anthropic",
        "model": "claude-sonnet-4",
        "input_tokens": 10,
        "cached_tokens": 500,
        "cache_creation_tokens": 90,
    }
    item = settlement_for({**AUTHZ, "priced_model": "claude-sonnet-4"}, usage, 200, PRICES)
    assert isinstance(item, SettleRequest)
    assert item.cost == PRICES.cost_micros("claude-sonnet-4", 600, 100, 500, 90)


@pytest.mark.parametrize(
    ("usage", "code", "reached", "expected"),
    [
        ({}, 500, True, "release"),
        ({}, 429, True, "release"),
        ({}, 0, False, "release"),  # never reached the provider
        ({}, 0, True, "estimate"),  # client left before the answer: the provider still bills
        ({}, 200, True, "estimate"),  # stream without usage
        ({**USAGE, "complete": False}, 200, True, "estimate"),  # stream cut mid-way
    ],
)
def test_no_usage_rules(usage: dict[str, object], code: int, reached: bool, expected: str) -> None:
    item = settlement_for(AUTHZ, usage, code, PRICES, upstream_reached=reached)
    if expected == "release":
        assert isinstance(item, Release)
    else:
        assert isinstance(item, SettleRequest)
        assert item.estimated and item.cost == 5000


def test_unknown_reported_model_falls_back_to_the_priced_one() -> None:
    item = settlement_for(AUTHZ, {**USAGE, "model": "gpt-weird"}, 200, PRICES)
    assert isinstance(item, SettleRequest)
    assert item.cost == PRICES.cost_micros("gpt-4o", 1000, 100, 200)
