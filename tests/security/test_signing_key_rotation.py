"""C2, key rotation: reservations signed under the previous key still settle; an unknown key is
refused (and counted) without touching the reservation.

The service runs in process (`build_app` + `start_server` on a loopback port, real Redis); the
Checks and the access-log entries go over real gRPC. Three generations of the same service:
key A; then key B with A as previous_key_file; then key C alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format
from prometheus_client import REGISTRY, CollectorRegistry

from keeptrusts_authz import envoy_contract as ec
from keeptrusts_authz.config import parse_config
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.gateway.signing import key_id
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.server import App, build_app, start_server
from testing.redis_server import empty_keeping_epochs

USD = 1_000_000
WALLET = "team:team_eng"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}


def _config(redis_url: str, key: Path, previous: Path | None = None) -> Config:
    signing: dict[str, str] = {"key_file": str(key)}
    if previous is not None:
        signing["previous_key_file"] = str(previous)
    return parse_config(
        {
            "organization": {"id": "acme"},
            "consumer_groups": [{"name": "eng", "api_key": "kt_eng", "wallet_team_id": "team_eng"}],
            "providers": [{"name": "openai", "url": "http://127.0.0.1:1", "models": ["gpt-*"]}],
            "redis": {"url": redis_url, "socket_timeout_seconds": 1},
            "server": {"signing": signing},
        }
    )


@asynccontextmanager
async def _service(cfg: Config) -> AsyncIterator[tuple[App, grpc.aio.Channel]]:
    app = build_app(cfg, registry=CollectorRegistry())
    running = await start_server(app, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield app, channel
    finally:
        await channel.close()
        await running.stop(grace=0)


async def _check(channel: grpc.aio.Channel) -> dict[str, Any]:
    req = external_auth_pb2.CheckRequest()
    http = req.attributes.request.http
    http.path, http.method, http.raw_body = (
        "/v1/chat/completions",
        "POST",
        json.dumps(CHAT).encode(),
    )
    http.headers.update({"authorization": "Bearer kt_eng", "content-type": "application/json"})
    resp = await external_auth_pb2_grpc.AuthorizationStub(channel).Check(req, timeout=10)
    assert resp.status.code == 0
    return json_format.MessageToDict(resp.dynamic_metadata)


async def _log(channel: grpc.aio.Channel, authz: dict[str, Any]) -> None:
    """The gateway's access-log entry for a completed request of (100 in, 10 out) tokens."""
    e = accesslog_pb2.HTTPAccessLogEntry()
    json_format.ParseDict(authz, e.common_properties.metadata.filter_metadata[ec.AUTHZ_NAMESPACE])
    usage = {
        ec.USAGE_FOUND: True,
        ec.USAGE_COMPLETE: True,
        ec.USAGE_API: "openai",
        ec.USAGE_MODEL: "gpt-4o-mini",
        ec.USAGE_INPUT_TOKENS: 100,
        ec.USAGE_OUTPUT_TOKENS: 10,
    }
    json_format.ParseDict(usage, e.common_properties.metadata.filter_metadata[ec.USAGE_NAMESPACE])
    e.response.response_code.value = 200
    e.common_properties.time_to_last_upstream_tx_byte.FromMilliseconds(5)
    e.request.request_headers[ec.RESERVATION_HEADER] = authz[ec.AUTHZ_RESERVATION_ID]
    message = als_pb2.StreamAccessLogsMessage()
    message.identifier.log_name = ec.ACCESS_LOG_NAME
    message.http_logs.log_entry.append(e)

    async def one() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        yield message

    await als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(one(), timeout=10)


def _rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value("keeptrusts_accesslog_rejected_total", {"reason": reason})
    return value or 0.0


async def _eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.integration
def test_rotation_accepts_the_previous_key_and_refuses_an_unknown_one(
    redis_url: str, tmp_path: Path
) -> None:
    empty_keeping_epochs(redis_url)
    keys = {}
    for name in ("a", "b", "c"):
        keys[name] = tmp_path / name
        keys[name].write_text(name * 64, encoding="utf-8")
    cost = PriceTable.from_config(_config(redis_url, keys["a"])).cost_micros("gpt-4o-mini", 100, 10)

    async def go() -> None:
        async with _service(_config(redis_url, keys["a"])) as (app, channel):
            await app.wallets.credit(10 * USD, "USD", "test", "test")
            await app.wallets.allocate(WALLET, 10 * USD, "USD", "test", "test")
            first, second = await _check(channel), await _check(channel)
        assert first[ec.AUTHZ_KEY_ID] == key_id(keys["a"].read_bytes())

        # Rotated: B signs, A still verifies.
        async with _service(_config(redis_url, keys["b"], keys["a"])) as (app, channel):
            fresh = await _check(channel)
            assert fresh[ec.AUTHZ_KEY_ID] == key_id(keys["b"].read_bytes())
            await _log(channel, first)

            async def first_settled() -> bool:
                return (await app.wallets.wallet(WALLET)).spent_total == cost

            await _eventually(first_settled)
            await _log(channel, fresh)

            async def fresh_settled() -> bool:
                return (await app.wallets.wallet(WALLET)).spent_total == 2 * cost

            await _eventually(fresh_settled)

        # A retired: its last reservation is refused as signed by an unknown key, and stays open.
        before = _rejected("unknown_key")
        async with _service(_config(redis_url, keys["c"])) as (app, channel):
            await _log(channel, second)

            async def counted() -> bool:
                return _rejected("unknown_key") == before + 1

            await _eventually(counted)
            reservation = await app.wallets.reservation(second[ec.AUTHZ_RESERVATION_ID])
            assert reservation is not None and reservation.state == "open"
            wallet = await app.wallets.wallet(WALLET)
            assert wallet.spent_total == 2 * cost
            assert wallet.reserved == int(second[ec.AUTHZ_ESTIMATE_MICROS])

    asyncio.run(go())
