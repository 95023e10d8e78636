"""`hold` through the real Envoy: a Check waits on a cost ticket for funds or a decision."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keeptrusts_authz.cli.main import main as cli_main
from keeptrusts_authz.wallets.models import SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from testing.redis_server import RedisServer
from tests.api.conftest import HOLD_KEY, HOLD_TIMEOUT, Api
from tests.wallets.support import reserve_req

pytestmark = pytest.mark.envoy

CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def _chat(api: Api, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    status, hdrs, raw = api.stack.post("/v1/chat/completions", CHAT, key=HOLD_KEY, headers=headers)
    return status, hdrs, json.loads(raw) if raw else None


def _start(api: Api, pool: ThreadPoolExecutor) -> tuple[float, Future[Any]]:
    return time.monotonic(), pool.submit(_chat, api)


def _waiting_ticket(api: Api, timeout: float = HOLD_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tickets = api.ok("GET", "/v1/wallets/tickets?status=pending")["tickets"]
        waiting = [t for t in tickets if t["waiting"]]
        if waiting:
            return waiting[0]
        time.sleep(0.05)
    raise AssertionError("no waiting ticket appeared")


def test_held_request_proceeds_when_an_allocation_arrives(api: Api) -> None:
    api.fund()  # org pool only: team_research has no wallet yet
    with ThreadPoolExecutor(1) as pool:
        started, fut = _start(api, pool)
        ticket = _waiting_ticket(api)
        assert ticket["team_id"] == "team_research" and ticket["consumer_group"] == "research"
        assert ticket["model"] == "gpt-4o-mini" and float(ticket["amount"]) > 0
        assert ticket["created"].endswith("Z")
        api.ok("POST", "/v1/wallets/allocate",
               {"team_id": "team_research", "amount": "50", "currency": "USD"})  # fmt: skip
        status, headers, _ = fut.result(timeout=30)
        elapsed = time.monotonic() - started
    assert status == 200
    assert headers["x-keeptrusts-ticket"] == ticket["id"]
    assert elapsed < HOLD_TIMEOUT  # woken by the allocation, not by the timeout
    (done,) = api.ok("GET", "/v1/wallets/tickets")["tickets"]
    assert done["status"] == "funded" and done["waiting"] is False
    reserve = [e for e in api.ledger() if e["op"] == "reserve"]
    assert reserve and reserve[0]["wallet"] == "team:team_research"


WAKE_WITHIN = 1.0  # seconds: a pub/sub wake-up, far below the 5 s re-check and the hold timeout


def test_held_request_wakes_at_once_on_a_cli_direct_allocation(
    api: Api,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI straight against Redis (no wallet API): allocate.lua itself publishes the wake-up."""
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    api.fund()
    with ThreadPoolExecutor(1) as pool:
        _, fut = _start(api, pool)
        ticket = _waiting_ticket(api)
        funded_at = time.monotonic()
        argv = ["allocate", "--config", str(api.stack.config_path), "--team", "team_research"]
        assert cli_main([*argv, "--amount", "50", "--currency", "USD"]) == 0, capsys.readouterr()
        status, headers, _ = fut.result(timeout=30)
        waited = time.monotonic() - funded_at
    assert status == 200 and headers["x-keeptrusts-ticket"] == ticket["id"]
    assert waited < WAKE_WITHIN, waited
    (done,) = api.ok("GET", "/v1/wallets/tickets")["tickets"]
    assert done["status"] == "funded"
    (allocation,) = [e for e in api.ledger() if e["op"] == "allocate"]
    assert allocation["actor"].startswith("cli:")


def test_held_request_wakes_at_once_on_a_settle_refund(api: Api) -> None:
    """Money coming back from a reservation settled below its estimate (settle.lua publishes)."""
    api.fund("team_research", amount="5")
    hog = reserve_req(5_000_000, ("team:team_research",), team="team_research")

    async def reserve_all(w: WalletService) -> str:
        return (await w.reserve(hog)).outcome

    async def settle_cheap(w: WalletService) -> str:
        return (await w.settle(SettleRequest(hog.reservation_id, 1_000, False))).outcome

    assert api.stack.wallets(reserve_all) == "reserved"  # the team wallet is now empty
    with ThreadPoolExecutor(1) as pool:
        _, fut = _start(api, pool)
        ticket = _waiting_ticket(api)
        refunded_at = time.monotonic()
        assert api.stack.wallets(settle_cheap) == "settled"
        status, headers, _ = fut.result(timeout=30)
        waited = time.monotonic() - refunded_at
    assert status == 200 and headers["x-keeptrusts-ticket"] == ticket["id"]
    assert waited < WAKE_WITHIN, waited


def test_held_request_proceeds_after_approval_and_approving_twice_is_409(api: Api) -> None:
    api.fund()
    with ThreadPoolExecutor(1) as pool:
        _, fut = _start(api, pool)
        ticket = _waiting_ticket(api)
        viewer = api.call("POST", f"/v1/wallets/tickets/{ticket['id']}:approve", {}, role="viewer")
        assert viewer.status == 403
        approved = api.ok("POST", f"/v1/wallets/tickets/{ticket['id']}:approve",
                          {"funding": "org", "reason": "launch week"})  # fmt: skip
        assert approved["status"] == "approved" and approved["decided_by"] == "finance"
        status, headers, _ = fut.result(timeout=30)
    assert status == 200 and headers["x-keeptrusts-ticket"] == ticket["id"]
    reserve = [e for e in api.ledger() if e["op"] == "reserve"]
    assert reserve[0]["wallet"] == "org"
    (used,) = api.ok("GET", "/v1/wallets/tickets")["tickets"]
    assert used["status"] == "used" and used["funding"] == "org"
    before = api.snapshot()
    again = api.call("POST", f"/v1/wallets/tickets/{ticket['id']}:approve", {})
    assert again.status == 409 and again.json["error"]["type"] == "conflict"
    deny = api.call("POST", f"/v1/wallets/tickets/{ticket['id']}:deny", {})
    assert deny.status == 409
    assert api.snapshot() == before


def test_held_request_times_out_with_402_then_retry_with_approved_ticket(api: Api) -> None:
    # the team wallet exists but cannot pay: an approved overdraft needs a wallet to overdraw
    api.fund("team_research", "0.000001")
    started = time.monotonic()
    status, headers, body = _chat(api)
    elapsed = time.monotonic() - started
    assert status == 402
    assert HOLD_TIMEOUT - 0.2 <= elapsed < HOLD_TIMEOUT + 2
    ticket_id = body["error"]["ticket_id"]
    assert headers["x-keeptrusts-ticket"] == ticket_id
    assert int(headers["retry-after"]) >= 1
    assert headers["x-keeptrusts-reason"] == "hold_timeout"
    (ticket,) = api.ok("GET", "/v1/wallets/tickets")["tickets"]
    assert ticket["id"] == ticket_id and ticket["status"] == "pending" and not ticket["waiting"]
    assert not [e for e in api.ledger() if e["op"] == "reserve"]

    api.ok("POST", f"/v1/wallets/tickets/{ticket_id}:approve", {"funding": "overdraft"})
    status, headers, _ = _chat(api, {"x-keeptrusts-ticket": ticket_id})
    assert status == 200 and headers["x-keeptrusts-ticket"] == ticket_id
    reserve = [e for e in api.ledger() if e["op"] == "reserve"]
    assert reserve[0]["wallet"] == "team:team_research" and reserve[0]["overdraft"] == "1"
    # the ticket is spent: a second retry with it waits on a new ticket again
    status, _, body = _chat(api, {"x-keeptrusts-ticket": ticket_id})
    assert status == 402 and body["error"]["ticket_id"] != ticket_id


def test_denied_ticket_answers_402_at_once(api: Api) -> None:
    api.fund()
    with ThreadPoolExecutor(1) as pool:
        started, fut = _start(api, pool)
        ticket = _waiting_ticket(api)
        api.ok("POST", f"/v1/wallets/tickets/{ticket['id']}:deny", {"reason": "over plan"})
        status, headers, body = fut.result(timeout=30)
        elapsed = time.monotonic() - started
    assert status == 402 and elapsed < HOLD_TIMEOUT
    assert headers["x-keeptrusts-reason"] == "hold_denied"
    assert body["error"]["ticket_id"] == ticket["id"]
    team = api.ok("GET", "/v1/wallets/tickets", role="team")["tickets"]
    assert team == []  # the engineering lead does not see research's tickets


def _process_metrics(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = api.stack.cfg.server.metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_held_check_is_counted_as_held_and_its_wait_kept_out_of_check_latency(api: Api) -> None:
    """Measured: no gauge of held requests, and the Check-latency histogram mixed the hold
    timeout's wait with Checks. The held Check shows in keeptrusts_held_requests while it waits;
    its wait goes to keeptrusts_hold_wait_seconds, its Check latency stays under 1 s."""
    api.fund()
    check_count = ("keeptrusts_check_duration_seconds_count", ())
    check_fast = ("keeptrusts_check_duration_seconds_bucket", (("le", "1.0"),))
    wait_count = ("keeptrusts_hold_wait_seconds_count", (("outcome", "hold_timeout"),))
    wait_sum = ("keeptrusts_hold_wait_seconds_sum", (("outcome", "hold_timeout"),))
    before = _process_metrics(api)
    with ThreadPoolExecutor(1) as pool:
        _started, fut = _start(api, pool)
        _waiting_ticket(api)
        during = _process_metrics(api)
        status, headers, _ = fut.result(timeout=30)
    after = _process_metrics(api)
    assert status == 402 and headers["x-keeptrusts-reason"] == "hold_timeout"
    assert during[("keeptrusts_held_requests", ())] == 1.0
    assert after[("keeptrusts_held_requests", ())] == 0.0
    assert after[wait_count] - before.get(wait_count, 0.0) == 1.0
    assert after[wait_sum] - before.get(wait_sum, 0.0) >= HOLD_TIMEOUT - 0.2
    checks = after[check_count] - before.get(check_count, 0.0)
    assert checks >= 1
    assert after[check_fast] - before.get(check_fast, 0.0) == checks  # no Check took > 1 s
