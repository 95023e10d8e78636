# ruff: noqa: E501 - the request tables read best one case per line
"""The wallet REST API through the real Envoy (gRPC-JSON transcoder) to the real service."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.api.conftest import TOKEN_NAMES, TOKENS, Api

pytestmark = pytest.mark.envoy

# The seed's two commands, verbatim apart from the URL and token (-d bodies byte for byte).
SEED_BODIES = [
    '{\n"team_id": "team_engineering",\n"amount": 1200.00,\n"currency": "USD",\n'
    '"description": "Monthly AI allocation - Engineering"\n}',
    '{\n"team_id": "team_support",\n"amount": 800.00,\n"currency": "USD",\n'
    '"description": "Monthly AI allocation - Support"\n}',
]


def _seed_curl(api: Api, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "curl", "-s", "-X", "POST", f"{api.url}/v1/wallets/allocate",
            "-H", f"Authorization: Bearer {TOKENS['billing']}",
            "-H", "Content-Type: application/json",
            "-d", body,
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip


def _error(res: Any, status: int) -> dict[str, Any]:
    assert res.status == status, (res.status, res.raw)
    assert res.headers["content-type"].startswith("application/json")
    assert not any(h.startswith("grpc-") for h in res.headers), res.headers
    body: dict[str, Any] = res.json
    assert set(body) == {"error"} and body["error"]["type"] and body["error"]["message"]
    return dict(body["error"])


def _field(body: dict[str, Any]) -> str | None:
    field = body.get("field")
    return str(field) if field else None


def test_seed_curl_sequence_then_balance(api: Api) -> None:
    api.ok("POST", "/v1/wallets/credit", {"amount": 5000, "currency": "USD", "description": "Q"})
    import json

    results = [json.loads(_seed_curl(api, body).stdout) for body in SEED_BODIES]
    assert results[0]["op"] == "allocate"
    assert results[0]["balances"] == {"org": "3800.00", "team:team_engineering": "1200.00"}
    assert results[1]["balances"] == {"org": "3000.00", "team:team_support": "800.00"}
    assert results[0]["actor"] == "finance" and results[0]["replayed"] is False

    res = api.call("GET", "/v1/wallets/balance?team_id=team_engineering")
    assert res.status == 200
    assert not any(h.startswith("grpc-") for h in res.headers), res.headers
    body = res.json
    wallet = body["wallet"]
    assert wallet["id"] == "team:team_engineering"
    assert (wallet["balance"], wallet["allocated_total"], wallet["spent_total"]) == (
        "1200.00",
        "1200.00",
        "0.00",
    )
    assert wallet["status"] == "healthy" and wallet["currency"] == "USD"
    assert body["org"]["balance"] == "3000.00"
    (step,) = body["cascade"]
    assert step["consumer_group"] == "engineering"
    assert step["cascade"] == ["user", "team"]
    assert step["effective_wallet"] == "team:team_engineering"
    assert step["effective_scope"] == "team" and step["effective_available"] == "1200.00"
    assert step["on_insufficient"] == "block"

    ledger = api.ledger()
    assert [e["op"] for e in ledger] == ["credit", "allocate", "allocate"]
    assert {e["actor"] for e in ledger} == {"finance"}
    assert ledger[1]["description"] == "Monthly AI allocation - Engineering"
    assert not any(tok in str(ledger) for tok in TOKENS.values())


def test_every_route(api: Api) -> None:
    api.fund("team_engineering", "1000")
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "amount": "100", "currency": "USD"},
    )
    moved = api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_engineering", "user_id": "alice", "amount": 25.5, "currency": "USD"},
    )
    assert moved["balances"]["user:alice"] == "25.50"
    moved = api.ok(
        "POST",
        "/v1/wallets/reclaim",
        {"team_id": "team_engineering", "amount": "100", "currency": "usd"},
    )
    assert moved["op"] == "reclaim" and moved["balances"]["team:team_engineering"] == "900.00"
    moved = api.ok(
        "POST",
        "/v1/wallets/transfer",
        {"from_team_id": "team_engineering", "to_team_id": "team_support", "amount": 50,
         "currency": "USD", "description": "rebalance"},
    )  # fmt: skip
    assert moved["balances"] == {"team:team_engineering": "850.00", "team:team_support": "150.00"}

    listing = api.ok("GET", "/v1/wallets")
    by_id = {w["id"]: w for w in listing["wallets"]}
    assert set(by_id) == {"org", "team:team_engineering", "team:team_support", "user:alice"}
    eng = by_id["team:team_engineering"]
    assert eng["allocated_total"] == "850.00" and eng["reserved"] == "0.00"
    assert eng["burn_rate_per_day"] == "0.00" and eng["projected_depletion_date"] is None
    assert {w["status"] for w in listing["wallets"]} <= {"healthy", "low", "depleted"}
    teams = api.ok("GET", "/v1/wallets?scope=team")
    assert {w["scope"] for w in teams["wallets"]} == {"team"}

    page1 = api.ok("GET", "/v1/wallets/team:team_engineering/transactions?page_size=2")
    assert [t["op"] for t in page1["entries"]] == ["transfer", "reclaim"]
    assert page1["entries"][0]["attributes"]["to"] == "team:team_support"
    assert page1["entries"][0]["actor"] == "finance"
    assert page1["entries"][0]["time"].endswith("Z")
    token = page1["next_page_token"]
    page2 = api.ok(
        "GET", f"/v1/wallets/team%3Ateam_engineering/transactions?page_size=2&page_token={token}"
    )
    assert [t["op"] for t in page2["entries"]] == ["allocate"]
    assert page2["next_page_token"] is None

    assert api.ok("GET", "/v1/wallets/tickets") == {"currency": "USD", "tickets": []}
    user = api.ok("GET", "/v1/wallets/balance?user_id=alice")
    assert user["wallet"]["balance"] == "25.50"

    missing = _error(api.call("POST", "/v1/wallets/tickets/tk_" + "0" * 24 + ":approve", {}), 404)
    assert missing["type"] == "unknown_ticket"
    _error(api.call("POST", "/v1/wallets/tickets/tk_" + "0" * 24 + ":deny", {"reason": "no"}), 404)


def test_burn_rate_and_depletion_from_settled_spend(api: Api) -> None:
    api.fund("team_engineering", "70")
    status, _, _ = api.stack.post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-fake-usage": "1000000,100000"},
    )
    assert status == 200
    api.stack.wait_settled("team:team_engineering")
    eng = {w["id"]: w for w in api.ok("GET", "/v1/wallets")["wallets"]}["team:team_engineering"]
    spent = float(eng["spent_total"])
    assert spent > 0
    # The window is today plus the 7 previous UTC days (wallets/burn.py): 7 to 8 days of time.
    assert spent / 8 - 0.01 <= float(eng["burn_rate_per_day"]) <= spent / 7 + 0.01
    assert eng["projected_depletion_date"] is not None


# -- auth ---------------------------------------------------------------------------------------

ROUTES: dict[str, tuple[str, str, Any]] = {
    "credit": ("POST", "/v1/wallets/credit", {"amount": "1", "currency": "USD"}),
    "allocate": ("POST", "/v1/wallets/allocate",
                 {"team_id": "team_engineering", "amount": "1", "currency": "USD"}),
    "reclaim": ("POST", "/v1/wallets/reclaim",
                {"team_id": "team_engineering", "amount": "1", "currency": "USD"}),
    "transfer": ("POST", "/v1/wallets/transfer",
                 {"from_team_id": "team_engineering", "to_team_id": "team_support",
                  "amount": "1", "currency": "USD"}),
    "list": ("GET", "/v1/wallets", None),
    "balance_own": ("GET", "/v1/wallets/balance?team_id=team_engineering", None),
    "balance_other": ("GET", "/v1/wallets/balance?team_id=team_support", None),
    "transactions_own": ("GET", "/v1/wallets/team:team_engineering/transactions", None),
    "transactions_org": ("GET", "/v1/wallets/org/transactions", None),
    "tickets": ("GET", "/v1/wallets/tickets", None),
    "approve": ("POST", "/v1/wallets/tickets/tk_" + "1" * 24 + ":approve", {}),
    "deny": ("POST", "/v1/wallets/tickets/tk_" + "1" * 24 + ":deny", {}),
    "report": ("GET", "/v1/reports/chargeback?period=2026-01&format=csv", None),
}  # fmt: skip
MONEY = {"credit", "allocate", "reclaim", "transfer", "approve", "deny"}
ALLOWED: dict[str, set[str]] = {
    "billing": set(ROUTES),
    "viewer": set(ROUTES) - MONEY,
    "multi": set(ROUTES) - MONEY,
    "team": {"list", "balance_own", "transactions_own", "tickets"},
}


@pytest.fixture
def funded(api: Api) -> Api:
    api.fund("team_engineering", "100")
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "amount": "10", "currency": "USD"},
    )
    return api


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_auth_matrix(funded: Api, route: str) -> None:
    method, path, body = ROUTES[route]
    for role, allowed in sorted(ALLOWED.items()):
        res = funded.call(method, path, body, role=role)
        if route in allowed:
            # allowed: 200, or 404 for the unknown ticket -- never 401/403
            assert res.status in (200, 404), (role, route, res.status, res.raw)
        else:
            assert _error(res, 403)["type"] == "permission_denied", (role, route)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKENS["billing"]},
                    {"Authorization": f"Basic {TOKENS['billing']}"}):  # fmt: skip
        res = funded.call(method, path, body, role=None, headers=headers)
        assert _error(res, 401)["type"] == "unauthenticated", (route, headers)


def test_team_token_sees_only_its_team(funded: Api) -> None:
    ids = {w["id"] for w in funded.ok("GET", "/v1/wallets", role="team")["wallets"]}
    assert ids == {"team:team_engineering"}
    body = funded.ok("GET", "/v1/wallets/balance?team_id=team_engineering", role="team")
    assert body["org"] is None  # the org pool is not shown to a team token
    multi = {w["id"] for w in funded.ok("GET", "/v1/wallets", role="multi")["wallets"]}
    assert "org" in multi


# -- idempotency --------------------------------------------------------------------------------


def test_idempotent_retry_and_conflict(api: Api) -> None:
    api.fund()
    body = {"team_id": "team_engineering", "amount": "10", "currency": "USD", "description": "x"}
    first = api.call("POST", "/v1/wallets/allocate", body, headers={"Idempotency-Key": "alloc-1"})
    again = api.call("POST", "/v1/wallets/allocate", body, headers={"Idempotency-Key": "alloc-1"})
    assert first.status == again.status == 200
    assert first.json["replayed"] is False and again.json["replayed"] is True
    assert first.json["entry_id"] == again.json["entry_id"]
    assert again.json["balances"] == first.json["balances"]
    before = api.snapshot()
    changed = {**body, "amount": "11"}
    conflict = _error(
        api.call("POST", "/v1/wallets/allocate", changed, headers={"Idempotency-Key": "alloc-1"}),
        409,
    )
    assert conflict["type"] == "conflict"  # ALREADY_EXISTS
    # the same key on another operation is a different request too
    _error(
        api.call("POST", "/v1/wallets/reclaim", body, headers={"Idempotency-Key": "alloc-1"}), 409
    )
    # request_id in the body works like the header
    with_id = {**body, "request_id": "alloc-2"}
    a = api.ok("POST", "/v1/wallets/allocate", with_id)
    b = api.ok("POST", "/v1/wallets/allocate", with_id)
    assert (a["replayed"], b["replayed"]) == (False, True)
    assert api.snapshot()[0] == before[0] + 1
    assert api.wallet_hashes()["team:team_engineering"]["balance"] == str(20_000_000)
    mismatch = api.call(
        "POST", "/v1/wallets/allocate", with_id, headers={"Idempotency-Key": "other"}
    )
    assert _field(_error(mismatch, 400)) == "request_id"


# -- bad input ----------------------------------------------------------------------------------

_ALLOC = {"team_id": "team_engineering", "amount": "5", "currency": "USD"}
BAD: list[tuple[str, str, str, Any, int, str | None]] = [
    ("unknown_field", "POST", "/v1/wallets/allocate", {**_ALLOC, "bogus": 1}, 400, "bogus"),
    ("team_id_number", "POST", "/v1/wallets/allocate", {**_ALLOC, "team_id": 5}, 400, "team_id"),
    ("amount_negative", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": -5}, 400, "amount"),
    ("amount_negative_str", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "-5"}, 400, "amount"),
    ("amount_zero", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": 0}, 400, "amount"),
    ("amount_nan_str", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "NaN"}, 400, "amount"),
    ("amount_inf_str", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "Infinity"}, 400, "amount"),
    ("amount_precise_str", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "1.0000001"}, 400, "amount"),
    ("amount_precise_num", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": 1.0000001}, 400, "amount"),
    ("amount_bool", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": True}, 400, "amount"),
    ("amount_object", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": {"v": 1}}, 400, "amount"),
    ("amount_missing", "POST", "/v1/wallets/allocate", {"team_id": "team_engineering", "currency": "USD"}, 400, "amount"),
    ("amount_too_big", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "1e12"}, 400, "amount"),
    ("currency_other", "POST", "/v1/wallets/allocate", {**_ALLOC, "currency": "EUR"}, 400, "currency"),
    ("currency_missing", "POST", "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "5"}, 400, "currency"),
    ("unknown_team", "POST", "/v1/wallets/allocate", {**_ALLOC, "team_id": "team_nope"}, 404, None),
    ("user_of_unknown_team", "POST", "/v1/wallets/allocate", {**_ALLOC, "team_id": "team_nope", "user_id": "bob"}, 400, "team_id"),
    ("user_without_team", "POST", "/v1/wallets/allocate", {"user_id": "bob", "amount": "5", "currency": "USD"}, 400, "team_id"),
    ("no_target", "POST", "/v1/wallets/allocate", {"amount": "5", "currency": "USD"}, 400, "team_id"),
    ("bad_team_id", "POST", "/v1/wallets/allocate", {**_ALLOC, "team_id": "a/b"}, 400, "team_id"),
    ("transfer_self", "POST", "/v1/wallets/transfer",
     {"from_team_id": "team_engineering", "to_team_id": "team_engineering", "amount": "1", "currency": "USD"}, 400, None),
    ("insufficient", "POST", "/v1/wallets/allocate", {**_ALLOC, "amount": "999999"}, 409, None),
    ("reclaim_insufficient", "POST", "/v1/wallets/reclaim", {**_ALLOC, "amount": "999"}, 409, None),
    ("not_json", "POST", "/v1/wallets/allocate", "not json", 400, None),
    ("nan_literal", "POST", "/v1/wallets/allocate", '{"team_id": "team_engineering", "amount": NaN}', 400, None),
    ("json_array", "POST", "/v1/wallets/allocate", "[1, 2]", 400, None),
    ("unknown_query", "GET", "/v1/wallets/balance?team_id=team_engineering&x=1", None, 400, None),
    ("balance_both", "GET", "/v1/wallets/balance?team_id=team_engineering&user_id=a", None, 400, "team_id"),
    ("balance_unknown", "GET", "/v1/wallets/balance?team_id=team_nope", None, 404, None),
    ("bad_wallet_id", "GET", "/v1/wallets/engineering/transactions", None, 400, "wallet_id"),
    ("unknown_wallet", "GET", "/v1/wallets/user:nobody/transactions", None, 404, None),
    ("bad_page_size", "GET", "/v1/wallets/org/transactions?page_size=1000", None, 400, "page_size"),
    ("bad_page_token", "GET", "/v1/wallets/org/transactions?page_token=abc", None, 400, "page_token"),
    ("bad_ticket_id", "POST", "/v1/wallets/tickets/nope:approve", {}, 400, "ticket_id"),
    ("bad_funding", "POST", "/v1/wallets/tickets/tk_" + "2" * 24 + ":approve", {"funding": "x"}, 400, "funding"),
    ("approve_unknown_field", "POST", "/v1/wallets/tickets/tk_" + "2" * 24 + ":approve", {"why": 1}, 400, "why"),
    ("bad_scope", "GET", "/v1/wallets?scope=galaxy", None, 400, "scope"),
    ("wrong_method", "GET", "/v1/wallets/allocate", None, 405, None),
    ("unknown_path", "GET", "/v1/wallets/a/b/c", None, 404, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input_is_a_json_4xx_and_moves_nothing(
    funded: Api, method: str, path: str, body: Any, status: int, field: str | None
) -> None:
    before = funded.snapshot()
    err = _error(funded.call(method, path, body), status)
    if field is not None:
        assert _field(err) == field, err
        assert field in err["message"] or field in ("bogus", "why"), err
    assert funded.snapshot() == before


def test_token_names_are_the_actors(api: Api) -> None:
    assert TOKEN_NAMES["billing"] == "finance"
    api.fund("team_engineering", "1")
    assert {e["actor"] for e in api.ledger()} == {"finance"}
