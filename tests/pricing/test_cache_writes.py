"""Anthropic prompt-cache writes cost more than plain input: charged exactly, reserved for."""

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.pricing import PriceTable, Usage

PRICES = PriceTable.from_config(parse_config({}))


def test_cache_writes_are_charged_at_their_own_price() -> None:
    # claude-sonnet-4: input 3.00, cache read 0.30, cache write 3.75, output 15.00 per 1M
    usage = Usage.from_anthropic(
        10, 100, cache_read_input_tokens=500, cache_creation_input_tokens=2000
    )
    assert usage == Usage(2510, 100, 500, 2000)
    expected = 10 * 3 + 500 * 0.3 + 2000 * 3.75 + 100 * 15  # micros: price per 1M = micros/token
    assert PRICES.cost_micros("claude-sonnet-4", usage) == round(expected)
    assert PRICES.cost_micros("claude-sonnet-4", 2510, 100, 500, 2000) == round(expected)


def test_models_without_a_write_price_charge_input() -> None:
    assert PRICES.cost_micros("gpt-4o", 1000, 0, 0, 1000) == PRICES.cost_micros("gpt-4o", 1000, 0)


def test_worst_case_covers_a_prompt_written_to_the_cache() -> None:
    worst = PRICES.worst_case_micros("claude-sonnet-4", 1000, 10)
    assert worst >= PRICES.cost_micros("claude-sonnet-4", 1000, 10, 0, 1000)
    assert worst > PRICES.cost_micros("claude-sonnet-4", 1000, 10)
    assert PRICES.worst_case_micros("gpt-4o", 1000, 10, "default") == PRICES.cost_micros(
        "gpt-4o", 1000, 10
    )


def test_reads_and_writes_cannot_exceed_the_prompt() -> None:
    with pytest.raises(ValueError, match="exceeds input_tokens"):
        Usage(100, 0, 60, 50)


def test_one_hour_cache_writes_are_charged_twice_the_input() -> None:
    """`cache_control.ttl: "1h"` writes (usage.cache_creation.ephemeral_1h_input_tokens) cost
    2x input on Anthropic, not the 5-minute 1.25x."""
    usage = Usage.from_anthropic(
        10, 100, cache_creation_input_tokens=3000, cache_creation_1h_input_tokens=1000
    )
    assert usage == Usage(3010, 100, 0, 3000, 1000)
    expected = 10 * 3 + 2000 * 3.75 + 1000 * 6 + 100 * 15
    assert PRICES.cost_micros("claude-sonnet-4", usage) == round(expected)
    with pytest.raises(ValueError, match="1h"):
        Usage(3010, 0, 0, 10, 20)


def test_worst_case_covers_a_prompt_written_to_the_one_hour_cache() -> None:
    worst = PRICES.worst_case_micros("claude-sonnet-4", 1000, 10)
    usage = Usage(1000, 10, 0, 1000, 1000)
    assert worst == PRICES.cost_micros("claude-sonnet-4", usage) == 1000 * 6 + 10 * 15
