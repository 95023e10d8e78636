"""Alerts: one event per crossing per period, delivered to a local webhook server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keeptrusts_authz.alerts.engine import AlertEngine
from keeptrusts_authz.alerts.webhook import WebhookDelivery
from keeptrusts_authz.gateway.settler import Settler
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from tests.observability.support import USD, make_config, rid, run, services, spend


class Hook:
    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first = fail_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.attempts <= hook.fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "alert-webhook.schema.json"
DOC_PATH = SCHEMA_PATH.with_name("alert-webhook.md")


def schema_errors(body: Any) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A local webhook; every body it received must match docs/alert-webhook.schema.json."""
    h = Hook()
    yield h
    h.close()
    for body in h.bodies:
        assert schema_errors(body) == [], body


def test_threshold_crossed_twice_in_a_period_alerts_once(redis_url: str, hook: Hook) -> None:
    cfg = make_config(
        redis_url,
        enforcement={"alert_thresholds": [50, 80], "low_balance_ratio": "0.1"},
        alerts={"webhook_url": hook.url},
    )
    webhook = WebhookDelivery(hook.url, backoff=0.01)

    async def go() -> tuple[list[Any], list[Any]]:
        async with services(cfg) as (svc, obs):
            engine = AlertEngine(obs, cfg, webhook)
            other_replica = AlertEngine(obs, cfg, webhook)
            await svc.credit(1_000 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_eng", 100 * USD, "USD", "seed", "test")
            first = []
            await spend(svc, 60 * USD, 55 * USD)  # 55 % spent: crosses 50
            first += await engine.evaluate(["team:team_eng"])
            first += await other_replica.evaluate(["team:team_eng"])  # same crossing: nothing
            # top up (back under 50 %) and cross 50 % again in the same month: no new event
            await svc.allocate("team:team_eng", 100 * USD, "USD", "top-up", "test")
            await spend(svc, 60 * USD, 50 * USD)  # 105 of 200 = 52.5 %
            second = await engine.evaluate(["team:team_eng"])
            second += await other_replica.evaluate(["team:team_eng"])
            events = await obs.events()
            return first + second, events

    created, stored = run(go())
    assert webhook.join(5)
    assert [(e.type, e.threshold) for e in created] == [("threshold", 50)]
    assert len(stored) == 1
    assert len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["type"] == "threshold" and body["threshold_percent"] == 50
    assert body["wallet"] == "team:team_eng" and body["spent_total"] == "55.00"
    assert "secret" not in json.dumps(body)
    webhook.close()


async def _reserve(svc: WalletService, wallet: str, team: str, amount: int, ttl_ms: int) -> str:
    r = rid()
    res = await svc.reserve(
        ReserveRequest(
            reservation_id=r,
            candidates=(wallet,),
            amount=amount,
            policy="block",
            overdraft_wallet=None,
            ttl_ms=ttl_ms,
            team=team,
            group="support",
            user="u",
            model="gpt-4o",
        )
    )
    assert res.allowed
    return r


async def _events_settled(obs: Any, n: int, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        events = await obs.events()
        if len(events) >= n or time.monotonic() > deadline:
            await asyncio.sleep(0.2)  # and nothing more arrives
            return await obs.events()
        await asyncio.sleep(0.02)


def _kinds(events: list[tuple[str, dict[str, str]]], wallet: str) -> list[tuple[str, str]]:
    return sorted(
        (f["type"], f["threshold"] or f["status"]) for _id, f in events if f["wallet"] == wallet
    )


ALL_FIVE = [
    ("status", "depleted"),
    ("status", "low"),
    ("threshold", "100"),
    ("threshold", "50"),
    ("threshold", "80"),
]


def test_status_and_thresholds_through_the_settle_hook(redis_url: str, hook: Hook) -> None:
    """Two replicas' settlers, each hooked to its own engine: every crossing alerts once."""
    cfg = make_config(redis_url, enforcement={"alert_thresholds": [50, 80, 100]})
    webhook = WebhookDelivery(hook.url, backoff=0.01)

    async def go() -> list[tuple[str, dict[str, str]]]:
        async with services(cfg) as (svc, obs):
            engines = [AlertEngine(obs, cfg, webhook, min_interval=0.05) for _ in range(2)]
            settlers = [Settler(svc, max_delay=0.001, after_settle=e.after_settle) for e in engines]
            for settler in settlers:
                settler.start()
            await svc.credit(1_000 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_support", 10 * USD, "USD", "seed", "test")
            wallet, team = "team:team_support", "team_support"
            first = await _reserve(svc, wallet, team, 9 * USD, 600_000)
            settlers[0].submit(SettleRequest(first, 9 * USD, False, 10, 10, 0))
            assert await settlers[0].flush()
            events = await _events_settled(obs, 3)
            assert _kinds(events, wallet) == [
                ("status", "low"),
                ("threshold", "50"),
                ("threshold", "80"),
            ]
            second = await _reserve(svc, wallet, team, USD, 600_000)
            settlers[1].submit(SettleRequest(second, USD, False, 10, 10, 0))
            assert await settlers[1].flush()
            # the other replica's engine re-evaluates the same wallet: nothing twice
            await engines[0].after_settle([wallet])
            events = await _events_settled(obs, 5)
            for settler in settlers:
                await settler.close()
            for engine in engines:
                await engine.close()
            return events

    events = run(go())
    assert webhook.join(5)
    assert _kinds(events, "team:team_support") == ALL_FIVE
    assert len(hook.bodies) == 5
    alerts = sorted((b["alert"], b["crossed"]["limit_percent"]) for b in hook.bodies)
    assert alerts == [
        ("depleted", "0.00"),
        ("low_balance", "20.00"),
        ("spend_threshold", "100.00"),
        ("spend_threshold", "50.00"),
        ("spend_threshold", "80.00"),
    ]
    assert all(b["team"] == "team_support" and b["user"] is None for b in hook.bodies)
    for body in hook.bodies:
        assert schema_errors(body) == [], body
    webhook.close()


def test_periodic_sweep_catches_expiries_and_admin_moves(redis_url: str, hook: Hook) -> None:
    cfg = make_config(
        redis_url,
        enforcement={"alert_thresholds": [50, 80, 100]},
        alerts={"sweep_interval_seconds": 0.05},
    )
    webhook = WebhookDelivery(hook.url, backoff=0.01)

    async def go() -> list[tuple[str, dict[str, str]]]:
        async with services(cfg) as (svc, obs):
            replicas = [AlertEngine(obs, cfg, webhook) for _ in range(2)]
            for engine in replicas:
                engine.start()  # the periodic sweep, on both replicas
            await svc.credit(1_000 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_support", 10 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_eng", 10 * USD, "USD", "seed", "test")
            # expiry: the sweeper charges the estimate (no settle, no hook)
            await _reserve(svc, "team:team_support", "team_support", 6 * USD, 1)
            await asyncio.sleep(0.01)
            assert len(await svc.expire_due(10)) == 1
            events = await _events_settled(obs, 1)
            assert _kinds(events, "team:team_support") == [("threshold", "50")]
            # admin move: reclaiming team_eng's funds makes it depleted (spent nothing)
            await svc.reclaim("team:team_eng", 10 * USD, "USD", "reclaim", "test")
            events = await _events_settled(obs, 2)
            await asyncio.sleep(0.3)  # several more sweeps on both replicas: nothing new
            events = await obs.events()
            for engine in replicas:
                await engine.close()
            return events

    events = run(go())
    assert webhook.join(5)
    assert _kinds(events, "team:team_support") == [("threshold", "50")]
    assert _kinds(events, "team:team_eng") == [("status", "depleted")]
    assert len(events) == 2 and len(hook.bodies) == 2
    webhook.close()


def test_failing_or_slow_hook_never_fails_settlement(redis_url: str) -> None:
    cfg = make_config(redis_url)
    calls: list[set[str]] = []

    async def broken(wallet_ids: Iterable[str]) -> None:
        calls.append(set(wallet_ids))
        raise RuntimeError("alerts are down")

    async def go() -> int:
        async with services(cfg) as (svc, _obs):
            settler = Settler(svc, max_delay=0.001, after_settle=broken)
            settler.start()
            await svc.credit(100 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_support", 10 * USD, "USD", "seed", "test")
            ids = [
                await _reserve(svc, "team:team_support", "team_support", USD, 600_000)
                for _ in range(3)
            ]
            for r in ids:
                settler.submit(SettleRequest(r, USD // 2, False))
            assert await settler.flush()
            await settler.close()
            w = await svc.wallet("team:team_support")
            return w.spent_total

    assert run(go()) == 3 * (USD // 2)
    assert calls and set().union(*calls) == {"team:team_support"}


def test_webhook_retries_with_backoff() -> None:
    h = Hook(fail_first=2)
    try:
        sleeps: list[float] = []
        webhook = WebhookDelivery(h.url, backoff=0.5, sleep=sleeps.append)
        assert webhook.submit({"event_id": "1-0"})
        assert webhook.join(5)
        assert h.attempts == 3 and len(h.bodies) == 1
        assert sleeps == [0.5, 1.0]
        webhook.close()
    finally:
        h.close()


def test_webhook_gives_up_and_never_raises() -> None:
    webhook = WebhookDelivery(
        "http://127.0.0.1:9/x", attempts=2, backoff=0.0, timeout=0.2, sleep=lambda _s: None
    )
    assert webhook.deliver(b"{}") is False


def test_after_settle_hook_returns_at_once(redis_url: str, hook: Hook) -> None:
    cfg = make_config(redis_url, enforcement={"alert_thresholds": [50]})

    async def go() -> int:
        async with services(cfg) as (svc, obs):
            engine = AlertEngine(obs, cfg, None)
            await svc.credit(100 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_eng", 10 * USD, "USD", "seed", "test")
            await spend(svc, 6 * USD, 6 * USD)
            await engine.after_settle(["team:team_eng"])  # schedules, does not evaluate inline
            for _ in range(100):
                await asyncio.sleep(0.01)
                if await obs.events():
                    break
            n = len(await obs.events())
            await engine.close()
            return n

    assert run(go()) == 1


def test_reclaim_fires_no_spend_threshold_only_the_low_balance_alert(redis_url: str) -> None:
    """Measured: reclaiming most of a team's funds fired threshold|50, threshold|80 (spent over the
    net allocation jumped because the allocation fell) although nothing was spent. Thresholds are
    spent_total over funded_total (money ever put in), which a reclaim or transfer never lowers."""
    cfg = make_config(redis_url, enforcement={"alert_thresholds": [50, 80]})

    async def go() -> tuple[list[Any], list[Any], list[Any]]:
        async with services(cfg) as (svc, obs):
            engine = AlertEngine(obs, cfg)
            await svc.credit(1_000 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_eng", 100 * USD, "USD", "seed", "test")
            await spend(svc, 40 * USD, 40 * USD)  # 40 % of the funding
            before = await engine.evaluate(["team:team_eng"])
            await svc.reclaim("team:team_eng", 55 * USD, "USD", "reclaim", "test")
            await svc.allocate("team:team_support", 1 * USD, "USD", "seed", "test")
            await svc.transfer("team:team_eng", "team:team_support", 1 * USD, "USD", "move", "test")
            after_moves = await engine.evaluate(["team:team_eng", "team:team_support"])
            await spend(svc, 3 * USD, 3 * USD)  # 43 of 100 funded: still under 50 %
            after_spend = await engine.evaluate(["team:team_eng"])
            return before, after_moves, after_spend

    before, after_moves, after_spend = run(go())
    assert before == []
    # 4 left of a 44 net allocation is a low balance (its own alert), but no spend threshold
    assert [(e.type, e.threshold, e.status) for e in after_moves] == [("status", None, "low")]
    low = after_moves[0].payload("acme", "USD", cfg.enforcement.low_balance_ratio)
    assert low["alert"] == "low_balance" and low["team"] == "team_eng"
    assert low["balance"] == "4.00" and low["allocated_total"] == "44.00"
    assert "spent" not in str(low["summary"])
    assert after_spend == []


def test_webhook_schema_matches_the_documented_example_and_rejects_drift() -> None:
    doc = DOC_PATH.read_text()
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    assert schema_errors(example) == []
    assert schema_errors({**example, "surprise": 1})  # no undocumented key slips through
    assert schema_errors({k: v for k, v in example.items() if k != "crossed"})
    assert schema_errors({**example, "balance": 12.5})  # amounts are decimal strings
