"""C2: the access-log service believed anyone.

Attack (issue 9): anyone reaching the service's gRPC port could stream `StreamAccessLogs` entries
naming a reservation id (learnt e.g. from a team token's ledger read) and settle it at $0,
release it, or charge it any cost; 2,000 forged releases of random ids left 2,000 tombstones.

Now the Check signs what a settlement may act on and the access-log consumer settles or releases
only entries whose signature verifies (gateway/signing.py). Each test below drives the real
stack: the real `serve` process, real Redis, the real Envoy with the fake provider; the forged
entries go over real gRPC to the service, as an attacker's would. The victim's reservation is a
real request held in flight at the provider (`x-fake-delay`), and it must still settle exactly
when it completes: the normal path through Envoy is unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from keeptrusts_authz import envoy_contract as ec
from keeptrusts_authz.gateway.signing import key_id
from keeptrusts_authz.pricing import PriceTable
from testing.stack import Stack
from tests.stack_fixtures import flush_store_fixture, provider_fixture, stack_fixture  # noqa: F401

pytestmark = pytest.mark.envoy

USD = 1_000_000
TEAM = "team_engineering"
WALLET = f"team:{TEAM}"
USAGE = (1000, 50, 0)  # what the provider reports for the victim's real request
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "x"}]}


def _redis(stack: Stack) -> redis.Redis:
    return redis.Redis.from_url(stack.cfg.redis.url, decode_responses=True)


def reservation_keys(stack: Stack) -> set[str]:
    with _redis(stack) as client:
        return {k for k in client.scan_iter("kt:{acme}:r:*") if not k.endswith(":deadlines")}


def rejected(stack: Stack) -> dict[str, float]:
    """keeptrusts_accesslog_rejected_total by reason, scraped from the service's /metrics."""
    url = f"http://127.0.0.1:{stack.cfg.server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "keeptrusts_accesslog_rejected_total":
                out[sample.labels["reason"]] = sample.value
    return out


class HeldRequest:
    """The victim: a real request through Envoy that the provider holds for `delay` seconds, so
    its reservation stays open while the attacker forges entries for it."""

    def __init__(self, stack: Stack, delay: float = 4.0) -> None:
        self.result: tuple[int, dict[str, str], bytes] | None = None
        headers = {"x-fake-delay": str(delay), "x-fake-usage": ",".join(map(str, USAGE))}
        self._thread = threading.Thread(
            target=lambda: setattr(
                self, "result", stack.post("/v1/chat/completions", CHAT, headers=headers)
            ),
            daemon=True,
        )
        before = reservation_keys(stack)
        self._thread.start()
        deadline = time.monotonic() + 10
        while True:
            new = reservation_keys(stack) - before
            if new:
                self.reservation_id = next(iter(new)).rsplit(":", 1)[1]
                break
            assert time.monotonic() < deadline, "the held request never reserved"
            time.sleep(0.02)
        self.reserved = stack.wallet(WALLET).reserved
        assert self.reserved > 0

    def finish(self) -> tuple[int, dict[str, str], bytes]:
        self._thread.join(30)
        assert self.result is not None
        return self.result


def entry(
    authz: dict[str, Any],
    usage: dict[str, Any] | None = None,
    code: int = 200,
    reservation_header: str | None = None,
) -> accesslog_pb2.HTTPAccessLogEntry:
    """An access-log entry as Envoy writes it (the Check's metadata, the Lua filter's usage)."""
    e = accesslog_pb2.HTTPAccessLogEntry()
    json_format.ParseDict(authz, e.common_properties.metadata.filter_metadata[ec.AUTHZ_NAMESPACE])
    if usage is not None:
        json_format.ParseDict(
            usage, e.common_properties.metadata.filter_metadata[ec.USAGE_NAMESPACE]
        )
    e.response.response_code.value = code
    e.common_properties.time_to_last_upstream_tx_byte.FromMilliseconds(5)
    if reservation_header is not None:
        e.request.request_headers[ec.RESERVATION_HEADER] = reservation_header
    return e


def forge(stack: Stack, entries: list[accesslog_pb2.HTTPAccessLogEntry]) -> None:
    """Stream entries straight to the service's gRPC port, as an attacker would."""
    message = als_pb2.StreamAccessLogsMessage()
    message.identifier.log_name = ec.ACCESS_LOG_NAME
    message.identifier.node.id = "attacker"
    message.http_logs.log_entry.extend(entries)
    target = f"127.0.0.1:{stack.cfg.server.grpc_port}"
    with grpc.insecure_channel(target) as channel:
        als_pb2_grpc.AccessLogServiceStub(channel).StreamAccessLogs(iter([message]), timeout=10)


def usage_of(input_tokens: int, output_tokens: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        ec.USAGE_FOUND: True,
        ec.USAGE_COMPLETE: True,
        ec.USAGE_API: "openai",
        ec.USAGE_MODEL: model,
        ec.USAGE_INPUT_TOKENS: input_tokens,
        ec.USAGE_OUTPUT_TOKENS: output_tokens,
        ec.USAGE_CACHED_TOKENS: 0,
    }


def stack_key(stack: Stack) -> bytes:
    assert stack.cfg.server.signing.key_file is not None
    return Path(stack.cfg.server.signing.key_file).read_bytes().strip()


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def assert_untouched(stack: Stack, held: HeldRequest) -> None:
    wallet = stack.wallet(WALLET)
    assert (wallet.reserved, wallet.spent_total) == (held.reserved, 0)
    with _redis(stack) as client:
        state = client.hget(f"kt:{{acme}}:r:{held.reservation_id}", "state")
    assert state == "open"
    ops = [e.op for e in stack.wallets(lambda w: w.ledger(count=50))]
    assert "settle" not in ops and "release" not in ops


def assert_settles_exactly(stack: Stack, held: HeldRequest) -> None:
    status, _, body = held.finish()
    assert status == 200, body
    wallet = stack.wait_settled(WALLET)
    cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o-mini", *USAGE)
    assert (wallet.reserved, wallet.spent_total, wallet.balance) == (0, cost, 10 * USD - cost)


# Forgeries an attacker who knows only the reservation id can send: each used to move money.
ATTACKS: dict[str, Callable[[str, Stack], accesslog_pb2.HTTPAccessLogEntry]] = {
    # Settle at $0: usage of nothing.
    "settle_at_zero": lambda rid, s: entry(
        {ec.AUTHZ_RESERVATION_ID: rid, ec.AUTHZ_ESTIMATE_MICROS: "1"}, usage_of(0, 0)
    ),
    # Release: the provider "failed".
    "release": lambda rid, s: entry({ec.AUTHZ_RESERVATION_ID: rid}, None, code=500),
    # Overcharge: o1 usage far above the reservation, pushing the wallet negative.
    "overcharge": lambda rid, s: entry(
        {ec.AUTHZ_RESERVATION_ID: rid, ec.AUTHZ_PRICED_MODEL: "o1"},
        usage_of(10_000_000, 10_000_000, "o1"),
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_unsigned_entry_moves_no_money(stack: Stack, attack: str) -> None:
    stack.fund(TEAM, 10 * USD)
    held = HeldRequest(stack)
    before = rejected(stack).get("missing_signature", 0)
    forge(stack, [ATTACKS[attack](held.reservation_id, stack)])
    # Wait for the service to have dealt with it: either it refused it, or (before the fix) it
    # closed the reservation.
    wait_for(
        lambda: (
            rejected(stack).get("missing_signature", 0) > before
            or stack.wallet(WALLET).reserved != held.reserved
        )
    )
    assert_untouched(stack, held)
    assert rejected(stack).get("missing_signature", 0) == before + 1
    assert_settles_exactly(stack, held)
    assert rejected(stack).get("missing_signature", 0) == before + 1  # the real entry verified


def _signed_attacks(stack: Stack, rid: str) -> list[tuple[str, accesslog_pb2.HTTPAccessLogEntry]]:
    """Forgeries with a signature: under a guessed key but the real key id (bad_signature), under
    the attacker's own key and key id (unknown_key)."""
    real_kid = key_id(stack_key(stack))
    mine = b"attacker-key-" + b"x" * 32
    authz = {
        ec.AUTHZ_ORG: "acme",
        ec.AUTHZ_RESERVATION_ID: rid,
        ec.AUTHZ_WALLET: WALLET,
        ec.AUTHZ_ESTIMATE_MICROS: "1",
        ec.AUTHZ_EXPIRES_MS: str(int(time.time() * 1000) + 600_000),
    }
    return [
        (
            "bad_signature",
            entry(
                {**authz, ec.AUTHZ_KEY_ID: real_kid, ec.AUTHZ_SIGNATURE: hmac_hex(mine, rid)},
                usage_of(0, 0),
            ),
        ),
        (
            "unknown_key",
            entry(
                {**authz, ec.AUTHZ_KEY_ID: key_id(mine), ec.AUTHZ_SIGNATURE: hmac_hex(mine, rid)},
                usage_of(0, 0),
            ),
        ),
    ]


def direct_check(stack: Stack) -> dict[str, Any]:
    """A Check sent to the service itself (reachable until the transport is authenticated):
    returns the dynamic metadata, signed for the caller's OWN reservation."""
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method, http.path = "POST", "/v1/chat/completions"
    http.headers.update(
        {"authorization": "Bearer kt_cg_engineering_prod", "content-type": "application/json"}
    )
    http.raw_body = json.dumps(CHAT).encode()
    target = f"127.0.0.1:{stack.cfg.server.grpc_port}"
    with grpc.insecure_channel(target) as channel:
        response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5)
    assert response.status.code == 0
    return json_format.MessageToDict(response.dynamic_metadata)


def test_forged_signatures_are_refused_by_reason(stack: Stack) -> None:
    stack.fund(TEAM, 10 * USD)
    held = HeldRequest(stack)
    before = rejected(stack)
    attacks = _signed_attacks(stack, held.reservation_id)
    # A genuinely signed reservation of the attacker's own, re-pointed at the victim's id: the
    # signature no longer covers it; or kept, but logged with the victim's reservation header.
    own = direct_check(stack)
    attacks.append(
        (
            "bad_signature",
            entry({**own, ec.AUTHZ_RESERVATION_ID: held.reservation_id}, usage_of(0, 0)),
        )
    )
    attacks.append(
        (
            "field_mismatch",
            entry(own, usage_of(0, 0), reservation_header=held.reservation_id),
        )
    )
    forge(stack, [e for _, e in attacks])
    expected = {reason: before.get(reason, 0) for reason, _ in attacks}
    for reason, _ in attacks:
        expected[reason] += 1
    wait_for(lambda: all(rejected(stack).get(r, 0) >= n for r, n in expected.items()))
    now = rejected(stack)
    assert {r: now.get(r, 0) for r in expected} == expected
    # The victim's reservation, and the attacker's own one, stayed open.
    with _redis(stack) as client:
        own_state = client.hget(f"kt:{{acme}}:r:{own[ec.AUTHZ_RESERVATION_ID]}", "state")
    assert own_state == "open"
    wallet = stack.wallet(WALLET)
    assert wallet.spent_total == 0
    assert_settles_exactly_with_own_open(stack, held, own)


def assert_settles_exactly_with_own_open(
    stack: Stack, held: HeldRequest, own: dict[str, Any]
) -> None:
    status, _, body = held.finish()
    assert status == 200, body
    cost = PriceTable.from_config(stack.cfg).cost_micros("gpt-4o-mini", *USAGE)
    own_estimate = int(own[ec.AUTHZ_ESTIMATE_MICROS])
    assert wait_for(lambda: stack.wallet(WALLET).spent_total == cost, timeout=15)
    wallet = stack.wallet(WALLET)
    assert (wallet.reserved, wallet.spent_total) == (own_estimate, cost)


def test_forged_releases_of_random_ids_leave_no_tombstones(stack: Stack) -> None:
    stack.fund(TEAM, 10 * USD)
    before_keys = reservation_keys(stack)
    before = rejected(stack).get("missing_signature", 0)
    ids = [f"r_{i:024x}" for i in range(2000)]
    forge(stack, [entry({ec.AUTHZ_RESERVATION_ID: rid}, None, code=500) for rid in ids])
    wait_for(lambda: rejected(stack).get("missing_signature", 0) >= before + 2000)
    time.sleep(0.3)  # before the fix the settler writes the releases in batches
    assert reservation_keys(stack) - before_keys == set()
    assert rejected(stack).get("missing_signature", 0) == before + 2000
