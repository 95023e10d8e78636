"""The admission refusal table through the real ext_authz servicer, in process: `build_app` and
`start_server` on a loopback port, a grpc.aio channel, real Redis, no Envoy.

(A body over `gateway.max_request_bytes` is refused with 413 by Envoy itself before any Check:
that row is tested through Envoy in tests/e2e.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from prometheus_client import CollectorRegistry

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.envoy_contract import REASON_HEADER, TICKET_HEADER
from keeptrusts_authz.server import build_app, start_server
from keeptrusts_authz.wallets.service import WalletService

USD = 1_000_000
CHAT = "/v1/chat/completions"


def _config(redis_url: str, **overrides: Any) -> Config:
    raw: dict[str, Any] = {
        "organization": {"id": "acme"},
        "consumer_groups": [
            {"name": "eng", "api_key": "kt_eng", "wallet_team_id": "team_eng"},
            {
                "name": "mini",
                "api_key": "kt_mini",
                "wallet_team_id": "team_eng",
                "allowed_models": ["gpt-4o-mini*"],
            },
            {
                "name": "research",
                "api_key": "kt_research",
                "wallet_team_id": "team_research",
                "on_insufficient": "hold",
            },
        ],
        "providers": [{"name": "openai", "url": "http://127.0.0.1:1", "models": ["gpt-*"]}],
        "redis": {"url": redis_url, "socket_timeout_seconds": 1},
        "enforcement": {"hold_timeout_seconds": 0.3},
    }
    raw.update(overrides)
    return parse_config(raw)


def _chat(model: str = "gpt-4o", **extra: Any) -> bytes:
    body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({**body, **extra}).encode()


@asynccontextmanager
async def _service(cfg: Config) -> AsyncIterator[tuple[Any, WalletService]]:
    app = build_app(cfg, registry=CollectorRegistry())
    running = await start_server(app, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield external_auth_pb2_grpc.AuthorizationStub(channel), app.wallets
    finally:
        await channel.close()
        await running.stop(grace=0)


async def _check(
    stub: Any, headers: Mapping[str, str], body: bytes, path: str = CHAT
) -> tuple[int, dict[str, str], dict[str, Any]]:
    req = external_auth_pb2.CheckRequest()
    http = req.attributes.request.http
    http.path, http.method, http.raw_body = path, "POST", body
    http.headers.update({"content-type": "application/json", **headers})
    resp = await stub.Check(req, timeout=10)
    if resp.HasField("ok_response"):
        return 200, {h.header.key: h.header.value for h in resp.ok_response.headers}, {}
    denied = resp.denied_response
    hdrs = {h.header.key: h.header.value for h in denied.headers}
    return denied.status.code, hdrs, json.loads(denied.body)


ENG = {"authorization": "Bearer kt_eng"}

# (case, headers, path, body, status, reason)
TABLE = [
    ("no_key", {}, CHAT, _chat(), 401, "invalid_api_key"),
    ("wrong_key", {"authorization": "Bearer kt_nope"}, CHAT, _chat(), 401, "invalid_api_key"),
    ("not_bearer", {"authorization": "Basic kt_eng"}, CHAT, _chat(), 401, "invalid_api_key"),
    ("endpoint", ENG, "/v1/images/generations", _chat(), 404, "unsupported_endpoint"),
    ("empty_body", ENG, CHAT, b"", 400, "invalid_request"),
    ("bad_json", ENG, CHAT, b"{not json", 400, "invalid_json"),
    ("no_model", ENG, CHAT, b'{"messages": []}', 400, "missing_model"),
    ("unknown_model", ENG, CHAT, _chat("gpt-no-such-9"), 400, "unknown_model"),
    ("unroutable", ENG, CHAT, _chat("no-such-model"), 400, "no_provider"),
    ("not_allowed", {"authorization": "Bearer kt_mini"}, CHAT, _chat(), 403, "model_not_allowed"),
    ("bad_user", {**ENG, "x-keeptrusts-user": "a b"}, CHAT, _chat(), 400, "invalid_user"),
    ("no_provider", ENG, CHAT, _chat("claude-sonnet-4-5"), 400, "no_provider"),
    ("block_402", ENG, CHAT, _chat(), 402, "insufficient_funds"),
]


def test_refusal_table_in_process(redis_url: str) -> None:
    async def go() -> list[tuple[str, int, str, dict[str, Any]]]:
        out = []
        async with _service(_config(redis_url)) as (stub, _):
            for case, headers, path, body, _status, _reason in TABLE:
                status, hdrs, payload = await _check(stub, headers, body, path)
                out.append((case, status, hdrs.get(REASON_HEADER, ""), payload))
        return out

    results = asyncio.run(go())
    for (case, *_rest, status, reason), (_, got, got_reason, payload) in zip(
        TABLE, results, strict=True
    ):
        assert (case, got, got_reason) == (case, status, reason), payload
        assert payload["error"]["type"] and payload["error"]["message"], case


def test_unroutable_model_says_no_provider_and_routed_unpriced_says_no_price(
    redis_url: str,
) -> None:
    """Measured: a model no provider serves answered "has no price" (pricing was looked up
    first). Routing is decided first now: each refusal names its own cause."""

    async def go() -> tuple[Any, Any]:
        async with _service(_config(redis_url)) as (stub, _):
            unroutable = await _check(stub, ENG, _chat("no-such-model"))
            unpriced = await _check(stub, ENG, _chat("gpt-no-such-9"))
            return unroutable, unpriced

    (s1, h1, b1), (s2, h2, b2) = asyncio.run(go())
    assert (s1, h1[REASON_HEADER], b1["error"]["type"]) == (400, "no_provider", "no_provider")
    assert b1["error"]["message"] == "no provider serves model 'no-such-model'"
    assert (s2, h2[REASON_HEADER], b2["error"]["type"]) == (400, "unknown_model", "unknown_model")
    assert b2["error"]["message"] == "model 'gpt-no-such-9' has no price; ask an operator"


def test_funded_request_is_allowed_and_hold_times_out_in_process(redis_url: str) -> None:
    async def go() -> tuple[Any, Any]:
        async with _service(_config(redis_url)) as (stub, wallets):
            await wallets.credit(100 * USD, "USD", "seed", "test")
            await wallets.allocate("team:team_eng", 10 * USD, "USD", "seed", "test")
            allowed = await _check(stub, ENG, _chat())
            held = await _check(stub, {"authorization": "Bearer kt_research"}, _chat())
            return allowed, held

    (status, headers, _), (hold_status, hold_headers, hold_body) = asyncio.run(go())
    assert status == 200 and headers["x-keeptrusts-provider"] == "openai"
    assert headers["x-keeptrusts-reservation"].startswith("r_")
    assert hold_status == 402 and hold_headers[REASON_HEADER] == "hold_timeout"
    assert hold_headers[TICKET_HEADER] == hold_body["error"]["ticket_id"]


@pytest.mark.integration  # no Redis, but the refused reserve's compensation retries for seconds
@pytest.mark.parametrize(("mode", "status"), [("deny", 503), ("allow", 200)])
def test_store_down_in_process(mode: str, status: int) -> None:
    """No Redis at all: the Check answers (fails closed with 503, or allows unreserved)."""
    from testing.redis_server import free_port

    cfg = _config(
        f"redis://127.0.0.1:{free_port()}/0",
        enforcement={"on_store_error": mode, "hold_timeout_seconds": 0.3},
        gateway={"check_timeout_seconds": 2},
    )

    async def go() -> tuple[int, dict[str, str], dict[str, Any]]:
        async with _service(cfg) as (stub, _):
            return await _check(stub, ENG, _chat())

    got, headers, body = asyncio.run(go())
    assert got == status
    if status == 503:
        assert headers[REASON_HEADER] == "store_unavailable"
        assert body["error"]["type"] == "store_unavailable"


def test_store_that_came_back_empty_is_503_store_regressed(redis_url: str) -> None:
    """Redis restarted without its data under a running service: fail closed with
    `store_regressed` even when `on_store_error: allow` would serve an unreachable store."""
    import redis as redis_sync

    cfg = _config(redis_url, enforcement={"on_store_error": "allow", "hold_timeout_seconds": 0.3})

    async def go() -> tuple[int, tuple[int, dict[str, str], dict[str, Any]], int]:
        async with _service(cfg) as (stub, wallets):
            await wallets.credit(100 * USD, "USD", "seed", "test")
            await wallets.allocate("team:team_eng", 10 * USD, "USD", "seed", "test")
            first, _, _ = await _check(stub, ENG, _chat())
            client = redis_sync.Redis.from_url(redis_url)
            client.flushall()
            refused = await _check(stub, ENG, _chat())
            size = int(client.dbsize())
            client.close()
            return first, refused, size

    first, (status, headers, body), size = asyncio.run(go())
    assert first == 200
    assert status == 503 and headers[REASON_HEADER] == "store_regressed"
    assert body["error"]["type"] == "store_regressed"
    assert size == 0  # the refused Check wrote nothing into the empty store


def test_output_128k_beta_cannot_overspend_a_block_wallet(redis_url: str) -> None:
    """Three concurrent 128k-output Claude 3.7 requests on a $3 block wallet: each is reserved
    at 128,000 output tokens ($1.92), so only one is admitted (at the 64k cap all three were)."""
    providers = [
        {"name": "anthropic", "kind": "anthropic", "url": "http://127.0.0.1:1", "models": ["*"]}
    ]
    body = json.dumps(
        {"model": "claude-3-7-sonnet", "max_tokens": 128_000, "messages": []}
    ).encode()
    beta = {"x-api-key": "kt_eng", "anthropic-beta": "output-128k-2025-02-19"}

    async def go() -> tuple[list[int], int]:
        async with _service(_config(redis_url, providers=providers)) as (stub, wallets):
            await wallets.credit(100 * USD, "USD", "seed", "test")
            await wallets.allocate("team:team_eng", 3 * USD, "USD", "seed", "test")
            results = await asyncio.gather(
                *(_check(stub, beta, body, "/v1/messages") for _ in range(3))
            )
            wallet = await wallets.wallet("team:team_eng")
            return [r[0] for r in results], wallet.reserved

    statuses, reserved = asyncio.run(go())
    assert sorted(statuses) == [200, 402, 402]
    assert reserved >= 128_000 * 15  # the output alone at $15 per 1M tokens


def test_free_endpoints_remove_the_user_token_and_claim_headers_as_the_llm_path(
    redis_url: str,
) -> None:
    """Review #11: GET /v1/models and count_tokens removed only the caller's key headers, so a
    custom `token_header` (not x-keeptrusts-*) or an unverified token reached the provider."""
    issuer = {
        "name": "corp_sso",
        "issuer": "https://sso",
        "jwks_inline": '{"keys": []}',
        "token_header": "x-corp-token",
    }
    cfg = _config(redis_url, jwt_issuers=[issuer])
    expected = {"authorization", "x-corp-token", "x-keeptrusts-jwt-user-corp-sso"}

    async def go() -> tuple[set[str], set[str]]:
        async with _service(cfg) as (stub, wallets):
            await wallets.credit(100 * USD, "USD", "seed", "test")
            await wallets.allocate("team:team_eng", 10 * USD, "USD", "seed", "test")
            out = []
            for method, path, body in (("GET", "/v1/models", b""), ("POST", CHAT, _chat())):
                req = external_auth_pb2.CheckRequest()
                http = req.attributes.request.http
                http.path, http.method, http.raw_body = path, method, body
                http.headers.update(
                    {"content-type": "application/json", **ENG, "x-corp-token": "a.b.c"}
                )
                resp = await stub.Check(req, timeout=10)
                assert resp.HasField("ok_response"), resp
                out.append(set(resp.ok_response.headers_to_remove))
            return out[0], out[1]

    free, llm = asyncio.run(go())
    assert expected <= llm
    assert expected <= free
