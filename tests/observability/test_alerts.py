"""Alerts: one event per crossing per period, delivered to a local webhook server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keeptrusts_authz.alerts.engine import AlertEngine
from keeptrusts_authz.alerts.webhook import WebhookDelivery
from keeptrusts_authz.metrics.usage import LedgerConsumer, UsageCounters, UsageLabels
from tests.observability.support import USD, make_config, run, services, spend


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


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


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


def test_status_and_thresholds_through_the_ledger_consumer(redis_url: str, hook: Hook) -> None:
    cfg = make_config(redis_url, enforcement={"alert_thresholds": [50, 80, 100]})
    webhook = WebhookDelivery(hook.url, backoff=0.01)

    async def go() -> list[tuple[str, dict[str, str]]]:
        async with services(cfg) as (svc, obs):
            engine = AlertEngine(obs, cfg, webhook)
            counters = UsageCounters(UsageLabels.from_config(cfg, None))
            consumer = LedgerConsumer(obs, counters, engine)
            await svc.credit(1_000 * USD, "USD", "seed", "test")
            await svc.allocate("team:team_support", 10 * USD, "USD", "seed", "test")
            await spend(svc, 9 * USD, 9 * USD, wallet="team:team_support", team="team_support")
            await consumer.poll_once()
            await spend(svc, USD, USD, wallet="team:team_support", team="team_support")
            await consumer.poll_once()
            await consumer.poll_once()
            return await obs.events()

    events = run(go())
    assert webhook.join(5)
    kinds = sorted(
        (f["type"], f["threshold"] or f["status"])
        for _id, f in events
        if f["wallet"] == "team:team_support"
    )
    assert kinds == [
        ("status", "depleted"),
        ("status", "low"),
        ("threshold", "100"),
        ("threshold", "50"),
        ("threshold", "80"),
    ]
    assert len(hook.bodies) == 5
    webhook.close()


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
        import asyncio

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
