"""Price tiers through the real Envoy, the real Lua filter and the fake provider (issue 11
item 4): a priority service tier is reserved and settled at priority prices (and cannot
overspend a `block` wallet), a long-context prompt settles at the long-context rate, a dated
snapshot is priced as itself, and an unbounded input is refused before it reaches the provider.
Every price is genai-prices 0.2.3's (through PriceTable)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack
from tests.fake_provider import FakeProvider
from tests.stack_fixtures import provider_fixture, stack_fixture  # noqa: F401

pytestmark = pytest.mark.envoy

USD = 1_000_000
TEAM = "team:team_engineering"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def prices(stack: Stack) -> PriceTable:
    return PriceTable.from_config(stack.cfg)


@pytest.fixture(autouse=True)
def _empty(redis_server: RedisServer, stack: Stack, provider: FakeProvider) -> None:
    empty_keeping_epochs(redis_server.url)
    provider.clear()


def _settles(stack: Stack, count: int = 1) -> list[Any]:
    wallet = stack.wait_settled(TEAM, timeout=20)
    assert wallet.reserved == 0, "no reservation may leak"
    ops = [e for e in stack.wallets(lambda w: w.ledger(count=20)) if e.op in ("settle", "release")]
    assert len(ops) == count, ops
    return ops


def _chat(model: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_priority_tier_settles_at_priority_prices(stack: Stack, prices: PriceTable) -> None:
    """Measured before: `service_tier: priority` settled at standard prices (the provider
    charges 1.7x for gpt-4o). The filter now reads the tier the response reports."""
    stack.fund("team_engineering", 10 * USD)
    status, _, raw = stack.post(
        CHAT, _chat("gpt-4o", 2000, service_tier="priority"), headers={"x-fake-usage": "1000,500,0"}
    )
    assert status == 200, raw
    assert json.loads(raw)["service_tier"] == "priority"
    (settle,) = _settles(stack)
    assert settle.fields["estimated"] == "0"
    priority = prices.cost_micros("gpt-4o", 1000, 500, service_tier="priority")
    standard = prices.cost_micros("gpt-4o", 1000, 500)
    assert (priority, standard) == (12_750, 7_500)  # $4.25/$17 vs $2.50/$10 per 1M
    assert int(settle.fields["cost"]) == priority


def test_reported_tier_wins_over_the_one_asked_for(stack: Stack, prices: PriceTable) -> None:
    """A request that asked for priority but was served at default settles at default."""
    stack.fund("team_engineering", 10 * USD)
    status, _, _ = stack.post(
        CHAT,
        _chat("gpt-4o", 2000, service_tier="priority"),
        headers={"x-fake-usage": "1000,500,0", "x-fake-service-tier": "default"},
    )
    assert status == 200
    (settle,) = _settles(stack)
    assert int(settle.fields["cost"]) == prices.cost_micros("gpt-4o", 1000, 500)


def test_priority_tier_cannot_overspend_a_block_wallet(stack: Stack, prices: PriceTable) -> None:
    """Three concurrent priority requests, each billed its whole output, on a wallet that holds
    2.5 priority reservations: reserved at standard prices all three got in and the wallet went
    below zero; at priority prices two get in, one is refused, and the wallet stays >= 0."""
    body = _chat("gpt-4o", 1000, service_tier="priority")
    reserve = prices.worst_case_micros(
        "gpt-4o", len(json.dumps(body)) + 8 + 64, 1000, service_tier="priority"
    )
    funded = reserve * 5 // 2
    stack.fund("team_engineering", funded)

    def one(_: int) -> int:
        status, _, _ = stack.post(
            CHAT, body, headers={"x-fake-usage": "10,1000,0", "x-fake-delay": "0.5"}
        )
        return status

    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(one, range(3)))
    assert statuses == [200, 200, 402]
    settles = [s for s in _settles(stack, 2) if s.op == "settle"]
    billed = prices.cost_micros("gpt-4o", 10, 1000, service_tier="priority")
    assert [int(s.fields["cost"]) for s in settles] == [billed, billed]
    wallet = stack.wallet(TEAM)
    assert wallet.spent_total == 2 * billed <= funded
    assert wallet.balance == funded - 2 * billed >= 0


def test_no_tier_asked_reported_priority_cannot_overspend_a_block_wallet(
    stack: Stack, prices: PriceTable
) -> None:
    """Review #5/#18: a request naming no `service_tier` runs at the account's default tier,
    which may be priority (an OpenAI project set to priority). Reserved at standard, three such
    requests billed at priority took a block wallet below zero; the reservation now covers every
    tier the provider can apply by default, and the settle charges the reported priority."""
    body = _chat("gpt-4o", 1000)
    reserve = prices.worst_case_micros(
        "gpt-4o", len(json.dumps(body)) + 8 + 64, 1000, service_tier="priority"
    )
    funded = reserve * 5 // 2
    stack.fund("team_engineering", funded)

    def one(_: int) -> int:
        status, _, _ = stack.post(
            CHAT,
            body,
            headers={
                "x-fake-usage": "10,1000,0",
                "x-fake-delay": "0.5",
                "x-fake-service-tier": "priority",
            },
        )
        return status

    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(pool.map(one, range(3)))
    assert statuses == [200, 200, 402]
    settles = [s for s in _settles(stack, 2) if s.op == "settle"]
    billed = prices.cost_micros("gpt-4o", 10, 1000, service_tier="priority")
    assert billed > prices.cost_micros("gpt-4o", 10, 1000)
    assert [int(s.fields["cost"]) for s in settles] == [billed, billed]
    assert all(int(s.fields["reserved"]) >= billed for s in settles)
    wallet = stack.wallet(TEAM)
    assert wallet.spent_total == 2 * billed <= funded
    assert wallet.balance == funded - 2 * billed >= 0


def test_long_context_prompt_settles_at_the_long_context_rate(
    stack: Stack, prices: PriceTable
) -> None:
    """claude-sonnet-4-5 above 200k prompt tokens: every token at $6 in / $22.50 out (2x / 1.5x),
    a cliff (genai-prices' TieredPrices); the reservation is at the long rates too."""
    stack.fund("team_engineering", 10 * USD)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "x" * 210_000}],
    }
    status, _, raw = stack.post(
        "/v1/messages",
        body,
        anthropic_style=True,
        headers={"x-fake-usage": "210000,100,0"},
    )
    assert status == 200, raw
    (settle,) = _settles(stack)
    assert settle.fields["estimated"] == "0", settle.fields
    cost = int(settle.fields["cost"])
    assert cost == prices.cost_micros("claude-sonnet-4-5", 210_000, 100)
    assert cost == 210_000 * 6 + -(-100 * 225 // 10)  # 1,260,000 + 2,250 micros
    assert cost > 210_000 * 3 + 100 * 15  # the standard rate it used to settle at
    assert int(settle.fields["reserved"]) >= cost


def test_dated_snapshot_is_priced_as_itself(
    stack: Stack, prices: PriceTable, provider: FakeProvider
) -> None:
    """gpt-4o-2024-05-13 ($5/$15) was priced as gpt-4o ($2.50/$10) by stripping its date; a
    date genai-prices does not list is unknown, never mapped to gpt-4o."""
    stack.fund("team_engineering", 10 * USD)
    status, _, raw = stack.post(
        CHAT, _chat("gpt-4o-2024-05-13", 2000), headers={"x-fake-usage": "1000,1000,0"}
    )
    assert status == 200, raw
    (settle,) = _settles(stack)
    assert (
        int(settle.fields["cost"]) == 20_000 == prices.cost_micros("gpt-4o-2024-05-13", 1000, 1000)
    )
    assert prices.cost_micros("gpt-4o", 1000, 1000) == 12_500
    status, _, raw = stack.post(CHAT, _chat("gpt-4o-2099-01-01", 10))
    assert status == 400 and json.loads(raw)["error"]["type"] == "unknown_model"
    assert len(provider.requests) == 1


def test_unbounded_input_is_refused_at_the_gateway(stack: Stack, provider: FakeProvider) -> None:
    stack.fund("team_engineering", 10 * USD)
    body = {"model": "gpt-4o", "input": "hi", "tools": [{"type": "web_search"}]}
    status, headers, raw = stack.post("/v1/responses", body)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "unbounded_input"
    assert "server-side tool (server_tool)" in error["message"]
    assert headers["x-keeptrusts-reason"] == "unbounded_input"
    assert provider.requests == []
    assert stack.wallet(TEAM).reserved == 0
