"""Issue 12 item 5: team leads re-split their own budget and request top-ups, through the REST
API (Envoy's transcoder -> the wallet gRPC API -> real Redis). Role matrix: own team only.

Tokens (tests/api/conftest.py): `team` = team:team_engineering (eng-lead), `support` =
team:team_support (support-lead), `multi` = viewer + team:team_support, `viewer`, `billing`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.conftest import TOKEN_NAMES, Api

pytestmark = pytest.mark.envoy

ENG = "/v1/wallets/teams/team_engineering"
SUP = "/v1/wallets/teams/team_support"


def _setup(api: Api) -> None:
    api.ok("POST", "/v1/wallets/credit", {"amount": "500", "currency": "USD"})
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "amount": "100", "currency": "USD"},
    )
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "amount": "50", "currency": "USD"},
    )
    # bob is a user of support, funded by billing.
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "user_id": "bob", "amount": "5", "currency": "USD"},
    )


def _balances(api: Api) -> dict[str, str]:
    return {w: h.get("balance", "") for w, h in api.wallet_hashes().items()}


def _audit(api: Api) -> None:
    report = api.stack.wallets(lambda w: w.audit())
    assert report.ok, report.mismatches


def _move(amount: str, user: str = "alice") -> dict[str, Any]:
    return {"user_id": user, "amount": amount, "currency": "USD"}


def test_team_lead_resplits_its_budget_within_its_balance(api: Api) -> None:
    _setup(api)
    res = api.ok("POST", f"{ENG}/allocate", _move("30"), role="team")
    assert res["balances"] == {"team:team_engineering": "70.00", "user:alice": "30.00"}
    assert res["actor"] == TOKEN_NAMES["team"]
    res = api.ok("POST", f"{ENG}/reclaim", _move("10"), role="team")
    assert res["balances"] == {"user:alice": "20.00", "team:team_engineering": "80.00"}
    moves = [e for e in api.ledger() if e["op"] == "transfer"]
    assert [(e["from"], e["to"], e["actor"]) for e in moves] == [
        ("team:team_engineering", "user:alice", "eng-lead"),
        ("user:alice", "team:team_engineering", "eng-lead"),
    ]
    # alice is now a user of engineering: the record says so, engineering's key spends it.
    assert api.wallet_hashes()["user:alice"]["team"] == "team_engineering"

    before = api.snapshot()
    too_much = api.call("POST", f"{ENG}/allocate", _move("80.01"), role="team")
    assert too_much.status == 409 and b"insufficient funds" in too_much.raw
    back = api.call("POST", f"{ENG}/reclaim", _move("20.01"), role="team")
    assert back.status == 409 and b"insufficient funds" in back.raw
    assert api.snapshot() == before
    _audit(api)


@pytest.mark.parametrize(
    ("role", "path", "body", "status"),
    [
        ("team", f"{SUP}/allocate", _move("1", "carol"), 403),  # another team's wallet
        ("team", f"{SUP}/reclaim", _move("1", "bob"), 403),
        ("support", f"{ENG}/allocate", _move("1"), 403),
        ("multi", f"{ENG}/allocate", _move("1"), 403),  # viewer + support: reads, not moves
        ("viewer", f"{ENG}/allocate", _move("1"), 403),
        ("team", f"{ENG}/allocate", _move("1", "bob"), 409),  # a user of another team
        ("team", f"{ENG}/reclaim", _move("1", "bob"), 409),
        ("team", f"{ENG}/allocate", {**_move("1"), "team_id": "x"}, 400),  # unknown field
        ("team", "/v1/wallets/teams/team_nope/allocate", _move("1"), 403),
        (None, f"{ENG}/allocate", _move("1"), 401),
    ],
)
def test_team_moves_role_matrix_own_team_only(
    api: Api, role: str | None, path: str, body: dict[str, Any], status: int
) -> None:
    _setup(api)
    before = api.snapshot()
    res = api.call("POST", path, body, role=role)
    assert res.status == status, res.raw
    assert api.snapshot() == before
    if status == 409:
        assert b"user_not_in_team" in res.raw or b"USER_NOT_IN_TEAM" in res.raw
        assert b"team_support" not in res.raw  # never says where bob belongs


def test_billing_may_resplit_any_team(api: Api) -> None:
    _setup(api)
    res = api.ok("POST", f"{SUP}/allocate", _move("5", "bob"), role="billing")
    assert res["balances"]["user:bob"] == "10.00"


def test_topup_requested_by_the_lead_and_approved_once_by_billing(api: Api) -> None:
    _setup(api)
    topup = api.ok(
        "POST",
        f"{ENG}/topups",
        {"amount": "200", "currency": "USD", "description": "Q1 evals"},
        role="team",
    )
    assert topup["status"] == "pending" and topup["requested_by"] == "eng-lead"
    assert topup["team_id"] == "team_engineering" and topup["amount"] == "200.00"
    tid = topup["id"]
    # Own team only: support's lead neither sees it nor asks on engineering's behalf.
    assert api.ok("GET", "/v1/wallets/topups", role="support")["topups"] == []
    assert (
        api.call("POST", f"{ENG}/topups", {"amount": "1", "currency": "USD"}, role="support").status
        == 403
    )
    assert (
        api.call("GET", "/v1/wallets/topups?team_id=team_engineering", role="support").status == 403
    )
    assert [t["id"] for t in api.ok("GET", "/v1/wallets/topups", role="team")["topups"]] == [tid]
    # Only billing decides.
    for role in ("team", "viewer", "support"):
        assert api.call("POST", f"/v1/wallets/topups/{tid}:approve", {}, role=role).status == 403
    assert _balances(api)["team:team_engineering"] == "100000000"

    approved = api.ok("POST", f"/v1/wallets/topups/{tid}:approve", {"reason": "ok"})
    assert approved["status"] == "approved" and approved["decided_by"] == "finance"
    assert _balances(api)["team:team_engineering"] == "300000000"
    assert _balances(api)["org"] == str((500 - 155 - 200) * 1_000_000)
    [entry] = [e for e in api.ledger() if e.get("topup") == tid]
    assert (entry["op"], entry["to"], entry["actor"]) == (
        "allocate",
        "team:team_engineering",
        "finance",
    )

    before = api.snapshot()
    again = api.call("POST", f"/v1/wallets/topups/{tid}:approve", {})
    assert again.status == 409 and b"already approved" in again.raw
    assert api.call("POST", f"/v1/wallets/topups/{tid}:deny", {}).status == 409
    assert api.snapshot() == before
    _audit(api)


def test_concurrent_approvals_allocate_once(api: Api) -> None:
    _setup(api)
    tid = api.ok("POST", f"{ENG}/topups", {"amount": "50", "currency": "USD"}, role="team")["id"]

    async def both() -> list[int]:
        calls = [
            asyncio.to_thread(api.call, "POST", f"/v1/wallets/topups/{tid}:approve", {})
            for _ in range(6)
        ]
        return sorted(r.status for r in await asyncio.gather(*calls))

    assert asyncio.run(both()) == [200, 409, 409, 409, 409, 409]
    assert len([e for e in api.ledger() if e.get("topup") == tid]) == 1
    assert _balances(api)["team:team_engineering"] == "150000000"
    _audit(api)


def test_denied_and_unfundable_topups_move_nothing(api: Api) -> None:
    _setup(api)
    tid = api.ok("POST", f"{ENG}/topups", {"amount": "20", "currency": "USD"}, role="team")["id"]
    before = api.snapshot()[1]
    denied = api.ok("POST", f"/v1/wallets/topups/{tid}:deny", {"reason": "not this quarter"})
    assert denied["status"] == "denied" and denied["reason"] == "not this quarter"
    assert api.call("POST", f"/v1/wallets/topups/{tid}:approve", {}).status == 409
    after = api.snapshot()[1]
    assert {w: h["balance"] for w, h in after.items()} == {
        w: h["balance"] for w, h in before.items()
    }

    big = api.ok("POST", f"{ENG}/topups", {"amount": "10000", "currency": "USD"}, role="team")
    res = api.call("POST", f"/v1/wallets/topups/{big['id']}:approve", {})
    assert res.status == 409 and b"insufficient funds in org" in res.raw
    [still] = [t for t in api.ok("GET", "/v1/wallets/topups?status=pending")["topups"]]
    assert still["id"] == big["id"]
    # Bad input names the problem and creates nothing.
    bad = api.call("POST", f"{ENG}/topups", {"amount": "-1", "currency": "USD"}, role="team")
    assert bad.status == 400 and b"amount" in bad.raw
    bad = api.call("POST", f"{ENG}/topups", {"amount": "1", "currency": "EUR"}, role="team")
    assert bad.status == 400 and b"currency" in bad.raw
    assert api.call("POST", "/v1/wallets/topups/tu_nope:approve", {}).status == 400
    missing = api.call("POST", "/v1/wallets/topups/tu_" + "0" * 24 + ":approve", {})
    assert missing.status == 404
    _audit(api)
