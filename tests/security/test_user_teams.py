"""C3 and H1: users belong to teams.

C3: `x-keeptrusts-user` is chosen by whoever holds a consumer key, and user wallets were global:
support's key plus `x-keeptrusts-user: alice` spent the personal wallet funded for engineering's
alice. A user wallet now carries its team (set when it is first funded for a team) and
reserve.lua refuses a user of another team in the same script that would fund it.

H1: a `team:<id>` token could read `user:<u>` once the last 7 days of ledger showed `u` spending
for that team, and those ledger fields come from the request headers: one spoofed request gave
the support lead alice's history, open reservation ids and, through the cascade view, engineering's
balance. Membership now comes from the wallet records and the config only.

Everything through the real stack: Envoy, `keeptrusts-authz serve`, Redis, the fake provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.api.conftest import Api, _admin_tokens, fresh_api
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
SUPPORT_KEY = "kt_cg_support_prod"
ENGINEERING_KEY = "kt_cg_engineering_prod"


@pytest.fixture(scope="module")
def team_stack(redis_server: RedisServer) -> Iterator[Stack]:
    """This module's own stack (the package's `api` stack may have seen another module's FLUSHALL
    of the shared Redis, which its store-integrity watch rightly treats as a lost store)."""
    with FakeProvider() as fake:
        cfg = stack_config(redis_server.url, fake.url, admin={"tokens": _admin_tokens()})
        with Stack(cfg) as stack:
            yield stack


@pytest.fixture
def api(team_stack: Stack, redis_server: RedisServer) -> Iterator[Api]:
    with fresh_api(team_stack, redis_server.url) as client:
        yield client


def _chat(api: Api, key: str, user: str) -> tuple[int, dict[str, Any]]:
    status, _, raw = api.stack.post(CHAT, BODY, key=key, headers={"x-keeptrusts-user": user})
    return status, json.loads(raw)


def _fund(api: Api) -> None:
    api.ok("POST", "/v1/wallets/credit", {"amount": "100", "currency": "USD"})
    for team in ("team_engineering", "team_support"):
        api.ok("POST", "/v1/wallets/allocate", {"team_id": team, "amount": "10", "currency": "USD"})
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "user_id": "alice", "amount": "5", "currency": "USD"},
    )


def test_another_teams_key_cannot_spend_a_users_wallet(api: Api) -> None:
    """C3: support's key naming engineering's alice is refused with an explicit reason and
    changes nothing (neither alice's wallet nor support's, no ledger entry)."""
    _fund(api)
    before = api.snapshot()
    status, body = _chat(api, SUPPORT_KEY, "alice")
    assert status == 403, body
    assert body["error"]["type"] == "user_not_in_team"
    assert "alice" in body["error"]["message"] and "team_support" in body["error"]["message"]
    assert "team_engineering" not in json.dumps(body)  # never says where alice belongs
    assert api.snapshot() == before

    # Her own team's key still spends from her wallet.
    status, body = _chat(api, ENGINEERING_KEY, "alice")
    assert status == 200, body
    alice = api.stack.wait_settled("user:alice")
    assert alice.spent_total > 0
    assert api.stack.wallet("team:team_support").spent_total == 0


def test_the_key_holder_may_act_as_any_user_of_its_own_team(api: Api) -> None:
    """The header default, as documented: a user without a wallet spends from the team wallet
    of the key's team, and the allocation made for that user names the team."""
    _fund(api)
    status, body = _chat(api, SUPPORT_KEY, "carol")
    assert status == 200, body
    support = api.stack.wait_settled("team:team_support")
    assert support.spent_total > 0
    # carol's first allocation: several teams are configured, so the team must be named.
    res = api.call(
        "POST", "/v1/wallets/allocate", {"user_id": "carol", "amount": "1", "currency": "USD"}
    )
    assert res.status == 400, res.raw
    assert b"team_required" in res.raw and b"team_id" in res.raw


def test_team_token_reads_no_user_of_another_team_after_a_spoofed_request(api: Api) -> None:
    """H1: the ledger shows `alice` spending for team_support (support's key named her before
    she had a wallet, which its key holder may do), then billing funds alice for engineering.
    The support lead's token reads none of alice: not her balance, not the cascade view that
    showed engineering's balance, not her transactions and reservation ids."""
    api.ok("POST", "/v1/wallets/credit", {"amount": "100", "currency": "USD"})
    for team in ("team_engineering", "team_support"):
        api.ok("POST", "/v1/wallets/allocate", {"team_id": team, "amount": "10", "currency": "USD"})
    status, body = _chat(api, SUPPORT_KEY, "alice")  # alice has no wallet yet
    assert status == 200, body
    api.stack.wait_settled("team:team_support")
    assert any(
        e.get("user") == "alice" and e.get("team") == "team_support" for e in api.ledger()
    )  # what the old membership scan read as "alice is a user of team_support"
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "user_id": "alice", "amount": "5", "currency": "USD"},
    )
    status, body = _chat(api, ENGINEERING_KEY, "alice")
    assert status == 200, body
    api.stack.wait_settled("user:alice")
    alice_rids = {
        e["reservation"]
        for e in api.ledger()
        if e.get("wallet") == "user:alice" and e.get("reservation")
    }
    assert alice_rids

    res = api.call("GET", "/v1/wallets/balance?user_id=alice", role="support")
    assert res.status == 403, res.raw
    assert b"alice" in res.raw
    res = api.call("GET", "/v1/wallets/user:alice/transactions", role="support")
    assert res.status == 403, res.raw
    listed = api.ok("GET", "/v1/wallets", role="support")
    ids = {w["id"] for w in listed["wallets"]}
    assert ids == {"team:team_support"}, ids
    own = api.ok("GET", "/v1/wallets/balance?team_id=team_support", role="support")
    shown = json.dumps(own)
    assert "team_engineering" not in shown and "user:alice" not in shown
    tx = api.ok("GET", "/v1/wallets/team:team_support/transactions", role="support")
    assert not alice_rids & {t["attributes"].get("reservation") for t in tx["entries"]}

    # Engineering's lead does read its user, and its cascade shows engineering's groups only.
    seen = api.ok("GET", "/v1/wallets/balance?user_id=alice", role="team")
    assert seen["wallet"]["id"] == "user:alice"
    assert {c["consumer_group"] for c in seen["cascade"]} == {"engineering"}
    listed = api.ok("GET", "/v1/wallets", role="team")
    assert {w["id"] for w in listed["wallets"]} == {"team:team_engineering", "user:alice"}
