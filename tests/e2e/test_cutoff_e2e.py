"""Requests that do not complete normally, through the real Envoy: a stream the client cuts off
is charged the bound of what it streamed, an Envoy-made timeout after the provider got the whole
request is charged (the provider goes on generating and billing), a provider's own error reply is
released."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from keeptrusts_authz.pricing import PriceTable
from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
TEAM = "team:team_engineering"
ROUTE_TIMEOUT_SECONDS = 1.5


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    cfg = stack_config(redis_server.url, provider.url)
    for p in cfg["providers"]:
        p["timeout_seconds"] = ROUTE_TIMEOUT_SECONDS
    with Stack(cfg) as s:
        yield s


@pytest.fixture(autouse=True)
def _funded(redis_server: RedisServer, stack: Stack) -> None:
    empty_keeping_epochs(redis_server.url)  # the module's services keep running
    stack.fund("team_engineering", 10 * USD)


def _settle(stack: Stack) -> Any:
    wallet = stack.wait_settled(TEAM, timeout=20)
    assert wallet.reserved == 0, "no reservation may leak"
    ops = [e for e in stack.wallets(lambda w: w.ledger(count=10)) if e.op in ("settle", "release")]
    assert len(ops) == 1, ops
    return ops[0]


def _cut_off_stream(stack: Stack, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    """Reads the stream until a few events arrived, then goes away."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.cfg.gateway.listen_port, timeout=10)
    conn.request(
        "POST",
        body.pop("_path", "/v1/chat/completions"),
        body=json.dumps(body),
        headers={
            "authorization": "Bearer kt_cg_engineering_prod",
            "content-type": "application/json",
            "x-fake-slow": "0.05",
            **headers,
        },
    )
    resp = conn.getresponse()
    assert resp.status == 200
    seen = b""
    while seen.count(b"\n\n") < 10:
        seen += resp.read1(4096)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    return seen


def test_cut_off_gpt4o_stream_is_charged_what_it_streamed(stack: Stack) -> None:
    """The measured case: gpt-4o, no max_tokens (reserved at the model's 16,384-token cap), the
    client leaves after a few events. Charged at most 3x what the whole stream would cost."""
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    completed = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o", 20, 40, 0)
    _cut_off_stream(stack, body, {"x-fake-usage": "20,40,0", "x-fake-events": "40"})
    settle = _settle(stack)
    assert settle.op == "settle" and settle.fields["estimated"] == "1"
    charged, reserved = int(settle.fields["cost"]), int(settle.fields["reserved"])
    print(f"cut-off gpt-4o: charged {charged}, completed {completed}, reserved {reserved}")
    assert 0 < charged <= 3 * completed, (charged, completed, reserved)
    assert reserved > 100 * completed  # the worst case it would have been charged before
    assert stack.wallet(TEAM).spent_total == charged


def test_cut_off_anthropic_stream_charges_the_reported_input(stack: Stack) -> None:
    body = {
        "_path": "/v1/messages",
        "model": "claude-sonnet-4",
        "max_tokens": 8000,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    conn_headers = {"x-fake-usage": "3000,500,0", "x-fake-events": "40"}
    _cut_off_stream(stack, body, conn_headers)
    settle = _settle(stack)
    assert settle.fields["estimated"] == "1"
    # message_start's input (3000 tokens, far above the body's bound) + what streamed.
    prices = PriceTable.from_config(stack.cfg)
    charged = int(settle.fields["cost"])
    assert prices.cost_micros("claude-sonnet-4", 3000, 0) < charged
    assert charged < prices.cost_micros("claude-sonnet-4", 3000, 500)


def test_cut_off_reasoning_model_stream_is_charged_its_reservation(stack: Stack) -> None:
    """o3 bills reasoning it never streams: what it showed bounds nothing."""
    body = {"model": "o3", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    _cut_off_stream(stack, body, {"x-fake-events": "40"})
    settle = _settle(stack)
    assert settle.fields["estimated"] == "1"
    assert settle.fields["cost"] == settle.fields["reserved"]


def test_route_timeout_after_the_provider_got_the_request_is_charged(stack: Stack) -> None:
    """Envoy's 504 (flag UT): the provider had the whole request and goes on billing."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = stack.post(
        "/v1/chat/completions", body, headers={"x-fake-delay": str(ROUTE_TIMEOUT_SECONDS + 1.5)}
    )
    assert status == 504, raw
    settle = _settle(stack)
    assert settle.op == "settle", "an Envoy timeout is not free"
    assert settle.fields["estimated"] == "1"
    assert int(settle.fields["cost"]) == int(settle.fields["reserved"]) > 0


def test_provider_error_reply_is_released(stack: Stack) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = stack.post("/v1/chat/completions", body, headers={"x-fake-status": "504"})
    assert status == 504
    assert _settle(stack).op == "release"
    assert stack.wallet(TEAM).spent_total == 0
