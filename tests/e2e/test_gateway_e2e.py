"""End to end through the real Envoy: ext_authz reserve -> fake provider -> access log -> settle.

Every assertion on money is exact, in micros: the wallet must end up charged precisely the cost of
the usage the fake provider reported, never the estimate (except where DESIGN says so).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from keeptrusts_authz.pricing import PriceTable, Usage
from testing.envoy_harness import loopback_gateway
from testing.redis_server import RedisServer, free_port
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider
from tests.stack_fixtures import flush_store_fixture, provider_fixture, stack_fixture  # noqa: F401

pytestmark = pytest.mark.envoy

USD = 1_000_000
CHAT = "/v1/chat/completions"


def prices(stack: Stack) -> PriceTable:
    return PriceTable.from_config(stack.cfg)


def chat(model: str = "gpt-4o-mini", stream: bool = False, **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": 256,
        **extra,
    }
    if stream:
        body["stream"] = True
    return body


CASES = [
    # (id, path, body, anthropic key header, usage header, input, output, cached)
    ("openai-chat-json", CHAT, chat(), False),
    ("openai-chat-sse-injected", CHAT, chat(stream=True), False),
    (
        "openai-chat-sse-include-usage",
        CHAT,
        chat(stream=True, stream_options={"include_usage": True}),
        False,
    ),
    (
        "openai-responses-json",
        "/v1/responses",
        {"model": "gpt-4.1", "input": "hi", "max_output_tokens": 300},
        False,
    ),
    (
        "openai-responses-sse",
        "/v1/responses",
        {"model": "gpt-4.1", "input": "hi", "max_output_tokens": 300, "stream": True},
        False,
    ),
    (
        "anthropic-json",
        "/v1/messages",
        {
            "model": "claude-sonnet-4",
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "hi"}],
        },
        True,
    ),
    (
        "anthropic-sse",
        "/v1/messages",
        {
            "model": "claude-sonnet-4",
            "max_tokens": 300,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        True,
    ),
    (
        "openai-embeddings",
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        False,
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "anthropic"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_wallet_charged_exactly_the_reported_usage(
    stack: Stack, provider: FakeProvider, path: str, body: dict[str, object], anthropic: bool
) -> None:
    stack.fund("team_engineering", 10 * USD)
    usage = (1234, 0 if "embeddings" in path else 321, 200)
    status, _, raw = stack.post(
        path,
        body,
        anthropic_style=anthropic,
        headers={"x-fake-usage": ",".join(map(str, usage)), "x-fake-chunk": "7"},
    )
    assert status == 200, raw
    # The provider got its own credential, never the caller's kt_ key.
    seen = provider.last().headers
    assert "kt_cg_engineering_prod" not in json.dumps(seen)
    if anthropic:
        assert seen["x-api-key"] == "sk-ant-test-secret"
    else:
        assert seen["authorization"] == "Bearer sk-test-openai-secret"
    assert not [h for h in seen if h.startswith("x-keeptrusts-")]  # never upstream
    wallet = stack.wait_settled("team:team_engineering")
    model = str(body["model"])
    cost = prices(stack).cost_micros(model, usage[0], usage[1], usage[2])
    assert cost > 0
    assert wallet.reserved == 0
    assert wallet.spent_total == cost
    assert wallet.balance == 10 * USD - cost
    entries = stack.wallets(lambda w: w.ledger(count=10))
    settles = [e for e in entries if e.op == "settle"]
    assert len(settles) == 1
    assert settles[0].fields["estimated"] == "0"
    assert settles[0].fields["input_tokens"] == str(usage[0])


def test_provider_error_releases_the_reservation(stack: Stack) -> None:
    stack.fund("team_engineering", 5 * USD)
    status, _, _ = stack.post(CHAT, chat(), headers={"x-fake-status": "500"})
    assert status == 500
    wallet = stack.wait_settled("team:team_engineering")
    assert (wallet.balance, wallet.reserved, wallet.spent_total) == (5 * USD, 0, 0)
    ops = [e.op for e in stack.wallets(lambda w: w.ledger(count=10))]
    assert "release" in ops


def test_client_disconnect_mid_stream_settles_at_the_streamed_bound(stack: Stack) -> None:
    stack.fund("team_engineering", 5 * USD)
    conn = http.client.HTTPConnection("127.0.0.1", stack.cfg.gateway.listen_port, timeout=10)
    conn.request(
        "POST",
        CHAT,
        body=json.dumps(chat(stream=True)),
        headers={
            "authorization": "Bearer kt_cg_engineering_prod",
            "content-type": "application/json",
            "x-fake-slow": "0.2",
            "x-fake-events": "40",
        },
    )
    resp = conn.getresponse()
    assert resp.status == 200
    resp.read1(64)  # the stream has started...
    conn.sock.shutdown(socket.SHUT_RDWR)  # ...and the client goes away
    conn.close()
    wallet = stack.wait_settled("team:team_engineering", timeout=20)
    assert wallet.reserved == 0, "no reservation may leak"
    settles = [e for e in stack.wallets(lambda w: w.ledger(count=10)) if e.op == "settle"]
    assert len(settles) == 1
    assert settles[0].fields["estimated"] == "1"
    # Input bound + what streamed (tests/e2e/test_cutoff_e2e.py), never above the reservation.
    assert 0 < wallet.spent_total < int(settles[0].fields["reserved"])


def test_insufficient_funds_is_402_with_a_json_body(stack: Stack, provider: FakeProvider) -> None:
    stack.fund("team_engineering", 1)  # one micro
    provider.clear()
    status, headers, raw = stack.post(CHAT, chat())
    assert status == 402
    assert headers["x-keeptrusts-reason"] == "insufficient_funds"
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    assert error["type"] == "insufficient_funds"
    assert error["team"] == "team_engineering"
    assert error["currency"] == "USD"
    assert error["available"] == "0.000001"
    assert float(error["requested"]) > 0
    assert "authz_unavailable" not in raw.decode() and "request_too_large" not in raw.decode()
    assert provider.requests == [], "a refused request never reaches the provider"
    assert stack.wallet("team:team_engineering").balance == 1


def test_warn_policy_allows_with_a_header_and_overdraws(stack: Stack) -> None:
    stack.fund("team_support", 1)  # warn overdraws an existing wallet, never creates one
    status, headers, _ = stack.post(
        CHAT, chat(), key="kt_cg_support_prod", headers={"x-fake-usage": "100,10,0"}
    )
    assert status == 200
    assert "x-keeptrusts-budget-warning" in headers
    wallet = stack.wait_settled("team:team_support")
    cost = prices(stack).cost_micros("gpt-4o-mini", 100, 10, 0)
    assert wallet.balance == 1 - cost


def test_warn_policy_without_a_wallet_is_refused(stack: Stack) -> None:
    """A reserve never creates a wallet from nothing: warn with no team wallet is a 402."""
    stack.fund("team_engineering", 1)  # the org exists and is armed
    status, _headers, _ = stack.post(CHAT, chat(), key="kt_cg_support_prod")
    assert status == 402
    assert stack.wallets(lambda w: w.store.wallet("team:team_support")) is None


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (None, chat(), 401, "invalid_api_key"),
        ("kt_wrong", chat(), 401, "invalid_api_key"),
        ("kt_cg_engineering_prod", b"{not json", 400, "invalid_json"),
        ("kt_cg_engineering_prod", {"messages": []}, 400, "missing_model"),
        ("kt_cg_engineering_prod", chat(model="gpt-unknown-9"), 400, "unknown_model"),
        ("kt_cg_legal_prod", chat(model="gpt-4o"), 403, "model_not_allowed"),
    ],
)
def test_bad_requests_are_refused_specifically(
    stack: Stack, key: str | None, body: object, status: int, code: str
) -> None:
    got, headers, raw = stack.post(CHAT, body, key=key)
    assert got == status
    assert headers["x-keeptrusts-reason"] == code
    assert json.loads(raw)["error"]["type"] == code
    if key:
        assert key not in raw.decode()


def _gateway_error(status: int, headers: dict[str, str], raw: bytes, kind: str) -> str:
    """Envoy's own reply in the gateway's error shape: JSON body + x-keeptrusts-reason."""
    assert headers["x-keeptrusts-reason"] == kind, (status, headers, raw)
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    assert error["type"] == kind and error["message"]
    return str(error["message"])


def test_oversize_body_is_413_json(stack: Stack, provider: FakeProvider) -> None:
    limit = stack.cfg.gateway.max_request_bytes
    provider.clear()
    big = chat(messages=[{"role": "user", "content": "x" * (limit + 10)}])
    for path in (CHAT, "/v1/messages", "/anything/else"):
        status, headers, raw = stack.post(path, big)
        assert status == 413
        assert str(limit) in _gateway_error(status, headers, raw, "request_too_large")
    assert provider.requests == []


def _sleeping_authz(port: int, seconds: float) -> grpc.Server:
    """An ext_authz server that answers too late (the Check times out in Envoy)."""
    from envoy.service.auth.v3 import external_auth_pb2_grpc

    class Slow(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
        def Check(self, request: object, context: object) -> object:
            time.sleep(seconds)
            raise RuntimeError("too late anyway")

    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(Slow(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def test_check_timeout_is_503_authz_unavailable(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    cfg = stack_config(
        redis_server.url,
        provider.url,
        gateway=loopback_gateway(access_log_flush_ms=50, check_timeout_seconds=0.3),
        # No block wait for reserved money: Envoy's Check timeout is then the 0.3 s alone.
        enforcement={"wait_for_reserved_seconds": 0},
    )
    with Stack(cfg, start_service=False) as s:
        slow = _sleeping_authz(s.cfg.gateway.authz_port, 2.0)
        try:
            provider.clear()
            started = time.monotonic()
            status, headers, raw = s.post(CHAT, chat())
            assert time.monotonic() - started < 1.9, "answered by Envoy's timeout, not the server"
        finally:
            slow.stop(grace=None)
        assert status == 503
        _gateway_error(status, headers, raw, "authz_unavailable")
        assert provider.requests == []


def test_concurrent_requests_never_overspend(stack: Stack) -> None:
    """200 concurrent requests from two teams against wallets that fund only part of them."""
    table = prices(stack)
    stack.fund("team_engineering", 3 * USD // 100)
    stack.fund("team_marketing", 2 * USD // 100)
    keys = {"team_engineering": "kt_cg_engineering_prod", "team_marketing": "kt_cg_marketing_prod"}

    def one(i: int) -> tuple[str, int, tuple[int, int]]:
        team = "team_engineering" if i % 2 else "team_marketing"
        usage = (200 + i, 50 + i % 17)
        status, _, _ = stack.post(
            CHAT,
            chat(model="gpt-4o", max_tokens=200),
            key=keys[team],
            headers={"x-fake-usage": f"{usage[0]},{usage[1]},0"},
        )
        return team, status, usage

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(200)))
    assert {s for _, s, _ in results} <= {200, 402}
    for team in keys:
        ok = [u for t, s, u in results if t == team and s == 200]
        assert ok, f"{team}: some requests must be funded"
        assert len(ok) < 100, f"{team}: the wallet cannot fund all of them"
        wallet = stack.wait_settled(f"team:{team}", timeout=30)
        allocation = 3 * USD // 100 if team == "team_engineering" else 2 * USD // 100
        spent = sum(table.cost_micros("gpt-4o", i, o, 0) for i, o in ok)
        assert wallet.reserved == 0
        assert wallet.spent_total == spent
        assert wallet.balance == allocation - spent >= 0
    report = stack.wallets(lambda w: w.audit())
    assert report.ok, report.mismatches


def test_showback_never_denies(redis_server: RedisServer, provider: FakeProvider) -> None:
    cfg = stack_config(
        redis_server.url, provider.url, cost_tracking={"enabled": True, "wallet_enforcement": False}
    )
    with Stack(cfg) as s:
        status, headers, _ = s.post(CHAT, chat(), headers={"x-fake-usage": "10,5,0"})
        assert status == 200
        assert "x-keeptrusts-budget-warning" not in headers
        wallet = s.wait_settled("team:team_engineering")
        assert wallet.spent_total == PriceTable.from_config(s.cfg).cost_micros(
            "gpt-4o-mini", 10, 5, 0
        )


def test_authz_service_down_is_503_json(redis_server: RedisServer, provider: FakeProvider) -> None:
    cfg = stack_config(redis_server.url, provider.url)
    with Stack(cfg, start_service=False) as s:
        provider.clear()
        for path, anthropic in ((CHAT, False), ("/v1/messages", True)):
            status, headers, raw = s.post(path, chat(), anthropic_style=anthropic)
            assert status == 503
            _gateway_error(status, headers, raw, "authz_unavailable")
        assert provider.requests == []
        # the wallet API does not go through the Check: its own JSON error shape is kept
        req = urllib.request.Request(s.url + "/v1/wallets/nope/x/y")
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as err:
            assert err.code == 404
            assert json.loads(err.read())["error"]["type"] == "not_found"
            assert err.headers["x-keeptrusts-reason"] == "not_found"


@pytest.mark.parametrize(("mode", "expected"), [("deny", 503), ("allow", 200)])
def test_redis_unreachable(provider: FakeProvider, mode: str, expected: int) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    cfg = stack_config(
        dead,
        provider.url,
        enforcement={"on_store_error": mode},
        gateway=loopback_gateway(access_log_flush_ms=50),
    )
    with Stack(cfg) as s:
        status, headers, raw = s.post(CHAT, chat())
        assert status == expected
        if expected == 503:
            # the service's own 503 passes through Envoy unchanged (not authz_unavailable)
            assert headers["x-keeptrusts-reason"] == "store_unavailable"
            assert headers["content-type"] == "application/json"
            error = json.loads(raw)["error"]
            assert error["type"] == "store_unavailable"
            assert "budget check service" not in error["message"]  # not Envoy's authz text
        assert s.service is not None and s.service.poll() is None, "the service must not crash"


def test_graceful_shutdown_flushes_pending_settlements(
    redis_server: RedisServer, provider: FakeProvider
) -> None:
    cfg = stack_config(redis_server.url, provider.url)
    with Stack(cfg) as s:
        s.fund("team_engineering", USD)
        status, _, _ = s.post(CHAT, chat(), headers={"x-fake-usage": "10,5,0"})
        assert status == 200
        time.sleep(0.3)  # let Envoy flush its access-log buffer
        assert s.stop_authz() == 0
        wallet = s.wallet("team:team_engineering")
        assert wallet.reserved == 0
        assert wallet.spent_total == PriceTable.from_config(s.cfg).cost_micros(
            "gpt-4o-mini", 10, 5, 0
        )


def test_every_choice_is_reserved_so_n_cannot_overspend(
    stack: Stack, provider: FakeProvider
) -> None:
    """n=50 bills 50 completions: the reservation must cover them, or a small wallet overspends."""
    stack.fund("team_engineering", 1000)  # 0.001 USD
    provider.clear()
    status, _, raw = stack.post(CHAT, chat(n=50, max_tokens=1000))
    assert status == 402, raw
    error = json.loads(raw)["error"]
    # 50 x 1000 output tokens of gpt-4o-mini at 0.60 per 1M
    assert float(error["requested"]) >= 0.03
    assert provider.requests == []
    assert stack.wallet("team:team_engineering").balance == 1000


def test_client_giving_up_before_the_answer_settles_at_estimate(stack: Stack) -> None:
    """The provider finishes (and bills) even when the client left before the response."""
    stack.fund("team_engineering", 5 * USD)
    conn = http.client.HTTPConnection("127.0.0.1", stack.cfg.gateway.listen_port, timeout=0.5)
    conn.request(
        "POST",
        CHAT,
        body=json.dumps(chat()),
        headers={
            "authorization": "Bearer kt_cg_engineering_prod",
            "content-type": "application/json",
            "x-fake-delay": "1.5",
        },
    )
    with pytest.raises(TimeoutError):
        conn.getresponse()
    conn.close()
    time.sleep(1.5)
    wallet = stack.wait_settled("team:team_engineering", timeout=20)
    assert wallet.reserved == 0
    entries = stack.wallets(lambda w: w.ledger(count=10))
    settles = [e for e in entries if e.op == "settle"]
    assert [e.op for e in entries if e.op == "release"] == []
    assert len(settles) == 1 and settles[0].fields["estimated"] == "1"
    assert wallet.spent_total == int(settles[0].fields["reserved"]) > 0


def test_provider_unreachable_releases(redis_server: RedisServer) -> None:
    """Nothing was sent to a provider that does not answer: nothing is charged."""
    dead_provider = f"http://127.0.0.1:{free_port()}"
    with Stack(stack_config(redis_server.url, dead_provider)) as s:
        s.fund("team_engineering", USD)
        status, _, _ = s.post(CHAT, chat())
        assert status == 503
        wallet = s.wait_settled("team:team_engineering")
        assert (wallet.balance, wallet.spent_total) == (USD, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_cache_writes_are_charged_at_the_write_price(stack: Stack, stream: bool) -> None:
    stack.fund("team_engineering", 10 * USD)
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 300,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }
    # 3000 prompt tokens: 500 read from the cache, 2000 written to it (600 of them with the 1h
    # TTL, at 2x input), 500 plain; 40 output.
    status, _, raw = stack.post(
        "/v1/messages",
        body,
        anthropic_style=True,
        headers={"x-fake-usage": "3000,40,500,2000,600"},
    )
    assert status == 200, raw
    wallet = stack.wait_settled("team:team_engineering")
    expected = prices(stack).cost_micros("claude-sonnet-4", Usage(3000, 40, 500, 2000, 600))
    assert expected == 500 * 3 + 500 * 0.3 + 1400 * 3.75 + 600 * 6 + 40 * 15
    assert wallet.spent_total == expected
