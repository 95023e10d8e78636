"""Unpriceable inputs are a policy (issue 11 item 5), through the real ext_authz Check in process
(real Redis, no Envoy): each feature is refused with a 400 naming it and nothing reserved, or
reserved with the group's allowance; a priority service tier reserves at priority prices."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from keeptrusts_authz.envoy_contract import REASON_HEADER, RESERVATION_HEADER
from keeptrusts_authz.gateway.estimation import reservation_micros
from keeptrusts_authz.gateway.request_parsing import parse_request
from keeptrusts_authz.pricing import PriceTable
from tests.gateway.test_check_inprocess import USD, _check, _config, _service

ENG = {"authorization": "Bearer kt_eng"}
ALLOW = {"authorization": "Bearer kt_allow"}
CLAUDE = {"authorization": "Bearer kt_claude"}
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = "/v1/messages"
ALLOWANCE = 50_000


def _cfg(redis_url: str, default_tier: str | None = None) -> Any:
    declared = {"default_service_tier": default_tier} if default_tier else {}
    return _config(
        redis_url,
        consumer_groups=[
            {"name": "eng", "api_key": "kt_eng", "wallet_team_id": "team_eng"},
            {
                "name": "allow",
                "api_key": "kt_allow",
                "wallet_team_id": "team_eng",
                "unbounded_inputs": "allowance",
                "unbounded_allowance_tokens": ALLOWANCE,
            },
            {"name": "claude", "api_key": "kt_claude", "wallet_team_id": "team_eng"},
        ],
        providers=[
            {
                "name": "openai",
                "url": "http://127.0.0.1:1",
                "models": ["gpt-*", "o*"],
                **declared,
            },
            {
                "name": "anthropic",
                "kind": "anthropic",
                "url": "http://127.0.0.1:1",
                "models": ["claude-*"],
            },
        ],
    )


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# (feature, path, headers-for-the-refusing-group, body)
FEATURES = [
    (
        "file_input",
        CHAT,
        ENG,
        _body(
            model="gpt-4o",
            max_tokens=10,
            messages=_user([{"type": "file", "file": {"file_id": "file-abc"}}]),
        ),
    ),
    (
        "file_input",
        MESSAGES,
        CLAUDE,
        _body(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=_user(
                [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0x",
                        },
                    }
                ]
            ),
        ),
    ),
    (
        "document_url",
        MESSAGES,
        CLAUDE,
        _body(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=_user(
                [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]
            ),
        ),
    ),
    (
        "document_url",
        RESPONSES,
        ENG,
        _body(
            model="gpt-4o",
            max_output_tokens=10,
            input=_user([{"type": "input_file", "file_url": "https://x/a.pdf"}]),
        ),
    ),
    (
        "stored_prompt",
        RESPONSES,
        ENG,
        _body(model="gpt-4o", max_output_tokens=10, prompt={"id": "pmpt_123"}, input="hi"),
    ),
    (
        "server_tool",
        RESPONSES,
        ENG,
        _body(model="gpt-4o", max_output_tokens=10, input="hi", tools=[{"type": "web_search"}]),
    ),
    (
        "server_tool",
        MESSAGES,
        CLAUDE,
        _body(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=_user("hi"),
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        ),
    ),
    (
        "mcp_server",
        MESSAGES,
        CLAUDE,
        _body(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=_user("hi"),
            mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "x"}],
        ),
    ),
    (
        "mcp_server",
        RESPONSES,
        ENG,
        _body(
            model="gpt-4o",
            max_output_tokens=10,
            input="hi",
            tools=[{"type": "mcp", "server_label": "x", "server_url": "https://mcp.example"}],
        ),
    ),
    (
        # Review #6: an input item that pulls a stored item of any size by its id.
        "stored_item",
        RESPONSES,
        ENG,
        _body(
            model="gpt-4o",
            max_output_tokens=10,
            input=[
                {"role": "user", "content": "hi"},
                {"type": "item_reference", "id": "msg_abc123"},
            ],
        ),
    ),
    (
        # An input item type the gateway does not know may be a reference too.
        "unknown_input_item",
        RESPONSES,
        ENG,
        _body(
            model="gpt-4o",
            max_output_tokens=10,
            input=[{"type": "stored_thing_from_2027", "id": "x_1"}],
        ),
    ),
]


async def _funded(wallets: Any) -> None:
    await wallets.credit(100 * USD, "USD", "seed", "test")
    await wallets.allocate("team:team_eng", 50 * USD, "USD", "seed", "test")


@pytest.mark.parametrize(
    ("feature", "path", "headers", "body"), FEATURES, ids=[f"{f[0]}-{f[1]}" for f in FEATURES]
)
def test_unbounded_input_is_refused_naming_the_feature(
    redis_url: str, feature: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    async def go() -> tuple[int, dict[str, str], dict[str, Any], int]:
        async with _service(_cfg(redis_url)) as (stub, wallets):
            await _funded(wallets)
            got = await _check(stub, headers, body, path)
            team = await wallets.wallet("team:team_eng")
            return (*got, team.reserved)

    status, hdrs, payload, reserved = asyncio.run(go())
    assert (status, hdrs[REASON_HEADER]) == (400, "unbounded_input"), payload
    assert payload["error"]["type"] == "unbounded_input"
    assert f"({feature})" in payload["error"]["message"]
    assert "unbounded_inputs: refuse" in payload["error"]["message"]
    assert reserved == 0  # changes nothing


def test_allowance_group_reserves_the_allowance_per_unbounded_input(redis_url: str) -> None:
    tools = [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    # At the standard tier (named: none would reserve gpt-4o's priority rates, review #5).
    std = {"service_tier": "default"}
    body = _body(model="gpt-4o", max_output_tokens=10, input="hi", tools=tools, **std)
    plain = _body(model="gpt-4o", max_output_tokens=10, input="hi", tools=[], **std)

    async def go() -> tuple[int, int, int, int]:
        async with _service(_cfg(redis_url)) as (stub, wallets):
            await _funded(wallets)
            s1, h1, _ = await _check(stub, ALLOW, body, RESPONSES)
            with_tools = await wallets.reservation(h1[RESERVATION_HEADER])
            s2, h2, _ = await _check(stub, ALLOW, plain, RESPONSES)
            without = await wallets.reservation(h2[RESERVATION_HEADER])
            assert with_tools is not None and without is not None
            return s1, s2, with_tools.amount, without.amount

    s1, s2, with_tools, without = asyncio.run(go())
    assert (s1, s2) == (200, 200)
    cfg = _cfg("redis://127.0.0.1:1/0")
    prices = PriceTable.from_config(cfg)
    priced = prices.resolve("gpt-4o")
    parsed = parse_request("openai_responses", body)
    assert parsed.unbounded == (("server_tool", 2),)
    assert with_tools == reservation_micros(parsed, priced, prices, cfg.enforcement, ALLOWANCE)
    # Two server-side tools: two allowances of 50k input tokens at gpt-4o's $2.50/1M (plus the
    # tool entries' own bytes).
    extra_bytes = len(body) - len(plain)
    # (each reservation is rounded up to a micro on its own: the difference is within 1)
    assert 0 <= -(-(2 * ALLOWANCE + extra_bytes) * 25 // 10) - (with_tools - without) <= 1


def test_client_side_tools_and_inline_documents_are_not_unbounded(redis_url: str) -> None:
    """Function tools, Anthropic's client-executed tools and text documents are in the body."""
    bodies = [
        (
            CHAT,
            ENG,
            _body(
                model="gpt-4o",
                max_tokens=10,
                messages=_user("hi"),
                tools=[
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {"x": {"type": "file"}}},
                        },
                    }
                ],
            ),
        ),
        (
            MESSAGES,
            CLAUDE,
            _body(
                model="claude-sonnet-4-5",
                max_tokens=10,
                tools=[
                    {"type": "bash_20250124", "name": "bash"},
                    {"name": "f", "input_schema": {"type": "object"}},
                ],
                messages=_user(
                    [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "hello"},
                        }
                    ]
                ),
            ),
        ),
    ]

    async def go() -> list[int]:
        async with _service(_cfg(redis_url)) as (stub, wallets):
            await _funded(wallets)
            return [(await _check(stub, h, b, p))[0] for p, h, b in bodies]

    assert asyncio.run(go()) == [200, 200]


def test_priority_service_tier_reserves_at_priority_prices(redis_url: str) -> None:
    """gpt-4o priority (genai-prices: $4.25 in / $17 out) reserves 1.7x the standard tier."""

    async def go() -> tuple[int, int]:
        async with _service(_cfg(redis_url)) as (stub, wallets):
            await _funded(wallets)
            amounts = []
            for extra in ({"service_tier": "default"}, {"service_tier": "priority"}):
                body = _body(model="gpt-4o", max_tokens=1000, messages=_user("hi"), **extra)
                _, hdrs, _ = await _check(stub, ENG, body)
                r = await wallets.reservation(hdrs[RESERVATION_HEADER])
                assert r is not None
                amounts.append(r.amount)
            return amounts[0], amounts[1]

    standard, priority = asyncio.run(go())
    assert priority > standard
    assert priority * 10 == pytest.approx(standard * 17, rel=0.01)


def _tier_amounts(redis_url: str, default_tier: str | None) -> list[int]:
    """What gpt-4o reserves for no tier, `auto`, `default` and `priority`, on a provider whose
    config declares `default_tier` (None: not declared)."""
    config = _cfg(redis_url, default_tier)

    async def go() -> list[int]:
        async with _service(config) as (stub, wallets):
            await _funded(wallets)
            amounts = []
            for extra in (
                {},
                {"service_tier": "auto"},
                {"service_tier": "default"},
                {"service_tier": "priority"},
            ):
                body = _body(model="gpt-4o", max_tokens=1000, messages=_user("hi"), **extra)
                # Pad the prompt so that every body has the same byte bound.
                pad = 140 - len(body)
                body = _body(
                    model="gpt-4o", max_tokens=1000, messages=_user("hi" + " " * pad), **extra
                )
                _, hdrs, _ = await _check(stub, ENG, body)
                r = await wallets.reservation(hdrs[RESERVATION_HEADER])
                assert r is not None
                amounts.append(r.amount)
            return amounts

    return asyncio.run(go())


def test_no_tier_asked_reserves_every_tier_the_account_can_apply(redis_url: str) -> None:
    """Review #5: none/`auto` leaves the tier to the account's default, which may be priority:
    reserved at the worst case over every tier unless the provider declares its default."""
    none, auto, standard, priority = _tier_amounts(redis_url, None)
    assert priority > standard
    assert none == auto == priority
    none, auto, standard, priority = _tier_amounts(redis_url, "default")
    assert none == auto == standard < priority
    none, auto, standard, priority = _tier_amounts(redis_url, "priority")
    assert none == auto == priority


def test_item_reference_takes_the_allowance(redis_url: str) -> None:
    """Under `allowance`, each referenced item reserves one allowance (review #6)."""
    refs = [{"type": "item_reference", "id": f"msg_{i}"} for i in range(2)]
    std = {"service_tier": "default"}
    body = _body(model="gpt-4o", max_output_tokens=10, input=refs, **std)

    async def go() -> tuple[int, int]:
        async with _service(_cfg(redis_url)) as (stub, wallets):
            await _funded(wallets)
            status, hdrs, _ = await _check(stub, ALLOW, body, RESPONSES)
            r = await wallets.reservation(hdrs[RESERVATION_HEADER])
            assert r is not None
            return status, r.amount

    status, amount = asyncio.run(go())
    assert status == 200
    assert parse_request("openai_responses", body).unbounded == (("stored_item", 2),)
    assert amount >= 2 * ALLOWANCE * 25 // 10  # two allowances at gpt-4o's $2.50/1M


def test_known_responses_input_items_are_not_unbounded() -> None:
    """Items whose content is in the body (messages, tool calls and their outputs, reasoning)."""
    items = [
        {"role": "user", "content": "hi"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "abc"},
    ]
    body = _body(model="gpt-4o", input=items)
    assert parse_request("openai_responses", body).unbounded == ()
