import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.gateway.reconcile import PER_CHOICE_UNSTREAMED_TOKENS, Release, settlement_for
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


# --------------------------------------------------------------------------- cut-off streams

BOUNDED = {**AUTHZ, "estimate_micros": "164218", "input_bound_tokens": "80", "output_bounded": True}
STREAMED = {
    "usage_found": False,
    "complete": False,
    "stream": True,
    "api": "",
    "model": "gpt-4o",
    "streamed_output_bytes": 60,
    "streamed_choices": 1,
}


def _settle(item: object) -> SettleRequest:
    assert isinstance(item, SettleRequest), item
    return item


def test_cut_off_stream_is_charged_input_bound_plus_streamed_output_bound() -> None:
    item = _settle(settlement_for(BOUNDED, STREAMED, 200, PRICES))
    assert item.estimated
    output = 60 + PER_CHOICE_UNSTREAMED_TOKENS
    assert item.cost == PRICES.worst_case_micros("gpt-4o", 80, output)
    assert (item.input_tokens, item.output_tokens) == (0, 0)  # bounds are not usage


def test_cut_off_charge_never_exceeds_the_reservation() -> None:
    authz = {**BOUNDED, "estimate_micros": "700"}
    assert _settle(settlement_for(authz, STREAMED, 200, PRICES)).cost == 700


def test_cut_off_without_a_provable_output_bound_is_charged_its_reservation() -> None:
    """Hidden reasoning (o-series, thinking) is billed but never streamed."""
    for authz in ({**BOUNDED, "output_bounded": False}, AUTHZ):
        item = _settle(settlement_for(authz, STREAMED, 200, PRICES))
        assert item.estimated and item.cost == int(authz["estimate_micros"])


def test_cut_off_anthropic_stream_uses_the_reported_input() -> None:
    authz = {**BOUNDED, "model": "claude-sonnet-4", "priced_model": "claude-sonnet-4"}
    usage = {
        **STREAMED,
        "usage_found": True,
        "api": "anthropic",
        "model": "claude-sonnet-4",
        "input_tokens": 10,
        "cached_tokens": 30,
        "cache_creation_tokens": 5,
        "output_tokens": 1,
    }
    item = _settle(settlement_for(authz, usage, 200, PRICES))
    output = 60 + PER_CHOICE_UNSTREAMED_TOKENS
    assert item.estimated
    assert item.cost == PRICES.cost_micros("claude-sonnet-4", 45, output, 30, 5)


def test_partial_usage_above_the_streamed_bound_wins() -> None:
    usage = {**STREAMED, "usage_found": True, "api": "anthropic", "output_tokens": 500}
    authz = {**BOUNDED, "model": "claude-sonnet-4", "priced_model": "claude-sonnet-4"}
    item = _settle(settlement_for(authz, usage, 200, PRICES))
    assert item.cost == PRICES.cost_micros("claude-sonnet-4", 0, 500)


@pytest.mark.parametrize("code", [504, 503, 0])
def test_envoy_made_failure_after_the_upstream_got_the_request_is_charged(code: int) -> None:
    item = settlement_for(BOUNDED, {}, code, PRICES, upstream_reached=True, envoy_failure=True)
    assert _settle(item).estimated and _settle(item).cost == 164218


def test_provider_error_reply_is_released() -> None:
    item = settlement_for(BOUNDED, {}, 504, PRICES, upstream_reached=True, envoy_failure=False)
    assert isinstance(item, Release)


@pytest.mark.parametrize(
    ("reported", "asked", "tier_prices"),
    [
        ("priority", "", "priority"),  # the provider's report decides
        ("default", "priority", "default"),  # asked for priority, served (and billed) at default
        ("", "priority", "priority"),  # no report: the tier asked for (what was reserved)
        ("", "", "default"),
    ],
)
def test_settle_reads_the_reported_service_tier(
    reported: str, asked: str, tier_prices: str
) -> None:
    authz = {**AUTHZ, "service_tier": asked} if asked else AUTHZ
    item = settlement_for(authz, {**USAGE, "service_tier": reported}, 200, PRICES)
    assert isinstance(item, SettleRequest) and not item.estimated
    expected = PRICES.cost_micros("gpt-4o", 1000, 100, 200, service_tier=tier_prices)
    assert item.cost == expected
    assert (item.cost > PRICES.cost_micros("gpt-4o", 1000, 100, 200)) == (tier_prices == "priority")
