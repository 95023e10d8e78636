"""One schema per resource whichever transport: CLI straight to Redis, the CLI through the wallet
API (KEEPTRUSTS_API_URL) and REST through the real Envoy give the same documents, and each
validates against its JSON Schema in docs/schemas/.

Issue 15 item 2: `balance --json` gave `allocated_total`/`spent_total` against Redis and
`allocated`/`spent` through the API (a script broke with KeyError: 'spent')."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from keeptrusts_authz.cli.main import main
from tests.api.conftest import HOLD_KEY, TOKENS, Api

pytestmark = pytest.mark.envoy
ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs/schemas"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
# Values that legitimately differ between two reads (the instant the report was generated).
VOLATILE = {"generated_at"}


def _registry() -> Registry[Any]:
    resources = []
    for path in SCHEMAS.glob("*.schema.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
        resources.append((path.name, Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def validate(doc: Any, schema: str) -> None:
    contents = json.loads((SCHEMAS / f"{schema}.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(contents, registry=_registry())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def _stable(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: "<volatile>" if k in VOLATILE else _stable(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_stable(v) for v in doc]
    return doc


def _keys(doc: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(prefix + k)
            out |= _keys(v, prefix + k + ".")
    elif isinstance(doc, list):
        for v in doc:
            out |= _keys(v, prefix + "[].")
    return out


@pytest.fixture(scope="module")
def scenario_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@pytest.fixture
def scenario(api: Api) -> Iterator[Api]:
    """Every resource with content: moves, spend through the gateway, an org-funded ticket."""
    api.fund("team_engineering", "1000")
    api.ok("POST", "/v1/wallets/allocate",
           {"team_id": "team_support", "amount": "200", "currency": "USD"})  # fmt: skip
    api.ok("POST", "/v1/wallets/transfer",
           {"from_team_id": "team_engineering", "to_team_id": "team_support", "amount": "50",
            "currency": "USD"})  # fmt: skip
    api.ok("POST", "/v1/wallets/allocate",
           {"team_id": "team_engineering", "user_id": "alice", "amount": "5",
            "currency": "USD"})  # fmt: skip
    for user in ("alice", "bob"):  # alice's own wallet pays; bob falls through to the team
        status, _, _ = api.stack.post("/v1/chat/completions", CHAT, headers={"x-user-id": user})
        assert status == 200
    # team_research has no wallet: its held request waits on a ticket the org approves
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(api.stack.post, "/v1/chat/completions", CHAT, HOLD_KEY)
        ticket = _waiting_ticket(api)
        api.ok("POST", f"/v1/wallets/tickets/{ticket['id']}:approve", {"funding": "org"})
        status, _, _ = fut.result(timeout=30)
    assert status == 200
    api.stack.wait_settled("team:team_engineering")
    api.stack.wait_settled("user:alice")
    api.stack.wait_settled("org")
    yield api


def _waiting_ticket(api: Api, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = api.ok("GET", "/v1/wallets/tickets?status=pending")["tickets"]
        waiting = [t for t in pending if t["waiting"]]
        if waiting:
            return waiting[0]
        time.sleep(0.05)
    raise AssertionError("no waiting ticket appeared")


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, (argv, out)
    return json.loads(out)


def _direct(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)
    monkeypatch.setenv("KEEPTRUSTS_CONFIG", str(api.stack.config_path))


def _via_api(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:
    monkeypatch.setenv("KEEPTRUSTS_API_URL", api.url)
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["billing"])
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)  # the API only, no config/Redis


# resource -> (schema, CLI argv, REST path)
RESOURCES: dict[str, tuple[str, list[str], str]] = {
    "wallets": ("wallet-list", ["balance", "--json"], "/v1/wallets"),
    "balance_team": (
        "balance",
        ["balance", "--team", "team_engineering", "--json"],
        "/v1/wallets/balance?team_id=team_engineering",
    ),
    "balance_user": (
        "balance",
        ["balance", "--user", "alice", "--json"],
        "/v1/wallets/balance?user_id=alice",
    ),
    "ledger_team": (
        "ledger-page",
        ["ledger", "--wallet", "team:team_engineering", "--limit", "3", "--json"],
        "/v1/wallets/team:team_engineering/transactions?page_size=3",
    ),
    "ledger_org": (
        "ledger-page",
        ["ledger", "--wallet", "org", "--limit", "50", "--json"],
        "/v1/wallets/org/transactions?page_size=50",
    ),
    "tickets": ("ticket-list", ["tickets", "--json"], "/v1/wallets/tickets"),
    "report": (
        "report",
        ["report", "--format", "json", "--period", "@month"],
        "/v1/reports/chargeback?format=json&period=@month",
    ),
}


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_every_transport_gives_the_same_document(
    scenario: Api,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    scenario_month: str,
    resource: str,
) -> None:
    schema, argv, path = RESOURCES[resource]
    argv = [a.replace("@month", scenario_month) for a in argv]
    path = path.replace("@month", scenario_month)
    _direct(monkeypatch, scenario)
    direct = _cli(capsys, argv)
    _via_api(monkeypatch, scenario)
    via_api = _cli(capsys, argv)
    rest = scenario.ok("GET", path)
    for doc in (direct, via_api, rest):
        validate(doc, schema)
    assert _keys(direct) == _keys(via_api) == _keys(rest)
    assert _stable(direct) == _stable(via_api) == _stable(rest)


def test_money_moves_give_the_same_document_both_cli_paths_and_rest(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.fund()
    _direct(monkeypatch, api)
    direct = _cli(capsys, ["allocate", "--team", "team_engineering", "--amount", "10", "--json"])
    _via_api(monkeypatch, api)
    via_api = _cli(capsys, ["allocate", "--team", "team_engineering", "--amount", "10", "--json"])
    rest = api.ok("POST", "/v1/wallets/allocate",
                  {"team_id": "team_engineering", "amount": "10", "currency": "USD"})  # fmt: skip
    for doc in (direct, via_api, rest):
        validate(doc, "move")
    assert _keys(direct) == _keys(via_api) == _keys(rest)
    assert direct["amount_micros"] == via_api["amount_micros"] == rest["amount_micros"] == 10**7
    assert rest["balances_micros"]["team:team_engineering"] == 30 * 10**6


def test_wallet_keys_are_the_same_for_scripts_on_either_path(
    scenario: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The measured case: a script reading `spent_total` works on both paths."""
    _direct(monkeypatch, scenario)
    direct = {w["id"]: w for w in _cli(capsys, ["balance", "--json"])["wallets"]}
    _via_api(monkeypatch, scenario)
    via_api = {w["id"]: w for w in _cli(capsys, ["balance", "--json"])["wallets"]}
    eng_d, eng_a = direct["team:team_engineering"], via_api["team:team_engineering"]
    assert eng_d["spent_total_micros"] == eng_a["spent_total_micros"] > 0
    assert eng_d["burn_rate_per_day"] == eng_a["burn_rate_per_day"]


def test_human_tables_are_the_same_on_either_path(
    scenario: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    for switch in (_direct, _via_api):
        switch(monkeypatch, scenario)
        capsys.readouterr()
        for argv in (
            ["balance"],
            ["balance", "--team", "team_engineering"],
            ["ledger", "--wallet", "team:team_engineering"],
            ["tickets"],
        ):
            assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert "BURN/DAY" in outputs[0] and "TICKET" in outputs[0]


def test_report_shows_ticket_funded_spend_in_every_format(
    scenario: Api, scenario_month: str
) -> None:
    """Issue 15 item 6: spend of a ticket the org approved showed only as org_backstop_spent."""
    base = f"/v1/reports/chargeback?period={scenario_month}"
    doc = scenario.ok("GET", base + "&format=json")
    research = next(r for r in doc["rows"] if r["team"] == "team_research")
    settled = [
        e
        for e in scenario.ledger()
        if e["op"] == "settle" and e.get("team") == "team_research" and e["wallet"] == "org"
    ]
    cost = sum(int(e["cost"]) for e in settled)
    assert cost > 0
    assert research["ticket_funded_spent_micros"] == cost
    assert research["org_backstop_spent_micros"] == cost
    engineering = next(r for r in doc["rows"] if r["team"] == "team_engineering")
    assert engineering["ticket_funded_spent_micros"] == 0 and engineering["spent_micros"] > 0
    assert doc["totals"]["ticket_funded_spent_micros"] == cost
    assert doc["ledger_totals"]["ticket_funded_micros"] == cost and doc["reconciled"] is True

    res = scenario.call("GET", base + "&format=csv")
    rows = {r["team"]: r for r in csv.DictReader(io.StringIO(res.raw.decode()))}
    assert rows["team_research"]["ticket_funded_spent"] == research["ticket_funded_spent"]
    assert rows["TOTAL"]["ticket_funded_spent"] == doc["totals"]["ticket_funded_spent"]

    html = scenario.call("GET", base + "&format=html").raw.decode()
    assert "ticket_funded_spent" in html or "ticket funded" in html.lower()

    focus = scenario.call("GET", base + "&format=focus").raw.decode()
    lines = list(csv.DictReader(io.StringIO(focus)))
    funded = sum(round(float(line["x_TicketFundedCost"]) * 10**6) for line in lines)
    assert funded == cost  # only team_research's request was ticket-funded
