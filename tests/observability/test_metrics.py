"""Scrape-time wallet gauges and ledger-fed counters against a real Redis."""

from __future__ import annotations

import asyncio
import math
import socket
import urllib.request
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keeptrusts_authz.config.models import RedisSettings
from keeptrusts_authz.metrics import registry as process_metrics
from keeptrusts_authz.metrics.http import build_observability, start_metrics_server
from keeptrusts_authz.metrics.usage import LedgerConsumer, UsageCounters, UsageLabels
from keeptrusts_authz.metrics.wallets import WalletCollector
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.store.observability import WalletSnapshotReader
from tests.observability.support import USD, make_config, run, services, spend


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wallet_value(found: dict[Any, float], name: str, wallet: str) -> float:
    scope = wallet.partition(":")[0]
    return found[(name, (("scope", scope), ("wallet", wallet)))]


def scrape(collector: Any) -> str:
    reg = CollectorRegistry()
    reg.register(collector)
    return generate_latest(reg).decode()


async def _history(cfg: Any) -> None:
    async with services(cfg) as (svc, _obs):
        await svc.credit(10_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_eng", 1_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_support", 100 * USD, "USD", "seed", "test")
        await svc.allocate("user:bob", 5 * USD, "USD", "seed", "test")
        await spend(svc, 2 * USD, 1_234_567)
        await spend(svc, 3 * USD, 2_000_001, model="claude-3-5-sonnet")
        await spend(svc, 95 * USD, 90 * USD, wallet="team:team_support", team="team_support")
        await spend(svc, USD, 10, wallet="org", team="", group="research", model="my-own-llm")
        await svc.transfer("team:team_eng", "team:team_support", 7 * USD, "USD", "t", "test")
        await svc.reclaim("user:bob", 5 * USD, "USD", "r", "test")


def test_scraped_gauges_equal_wallet_balances(redis_url: str) -> None:
    cfg = make_config(redis_url)
    run(_history(cfg))

    async def wallets() -> list[Any]:
        async with services(cfg) as (svc, _):
            return await svc.wallets()

    expected = run(wallets())
    reader = WalletSnapshotReader.from_settings(cfg.redis, cfg.organization.id)
    try:
        found = samples(scrape(WalletCollector(reader.read, cfg.enforcement.low_balance_ratio)))
    finally:
        reader.close()
    assert found[("keeptrusts_wallet_scrape_success", ())] == 1.0
    assert {w.id for w in expected} == {
        dict(k[1])["wallet"] for k in found if k[0] == "keeptrusts_wallet_balance"
    }
    for w in expected:
        assert wallet_value(found, "keeptrusts_wallet_balance", w.id) == w.balance / USD
        assert wallet_value(found, "keeptrusts_wallet_reserved", w.id) == w.reserved / USD
        assert wallet_value(found, "keeptrusts_wallet_allocated_total", w.id) == (
            w.allocated_total / USD
        )
        assert wallet_value(found, "keeptrusts_wallet_spent_total", w.id) == w.spent_total / USD
        for status in ("healthy", "low", "depleted"):
            key = (
                "keeptrusts_wallet_status",
                (("scope", w.scope), ("status", status), ("wallet", w.id)),
            )
            assert found[key] == (1.0 if w.status == status else 0.0)
    # team_support: 17 left of 107: low; bob reclaimed to 0: depleted
    statuses = {w.id: w.status for w in expected}
    assert statuses["team:team_support"] == "low"
    assert statuses["user:bob"] == "depleted"
    assert found[("keeptrusts_open_reservations", ())] == 0.0
    assert all(math.isfinite(v) for v in found.values())
    # no burn recorded yet (the ledger consumer has not run): no depletion sample, never +Inf
    assert not [
        k
        for k in found
        if k[0] == "keeptrusts_wallet_projected_depletion_seconds"
        and dict(k[1])["wallet"] != "user:bob"
    ]


def test_counters_equal_ledger_sums_and_depletion_projection(redis_url: str) -> None:
    cfg = make_config(redis_url)
    run(_history(cfg))
    counters = UsageCounters(UsageLabels.from_config(cfg, PriceTable.from_config(cfg)))

    async def consume() -> tuple[int, list[Any]]:
        async with services(cfg) as (svc, obs):
            consumer = LedgerConsumer(obs, counters)
            n = await consumer.poll_once()
            assert await consumer.poll_once() == 0  # each entry is delivered once
            entries = []
            async for e in svc.store.iter_ledger():
                entries.append(e)
            return n, entries

    n, entries = run(consume())
    assert n == len(entries)
    spend_entries = [e for e in entries if e.op in ("settle", "expire")]
    by_team: dict[str, int] = {}
    for e in spend_entries:
        by_team[e.fields["team"]] = by_team.get(e.fields["team"], 0) + int(e.fields["cost"])
    got: dict[str, int] = {}
    for (team, _group, _model, _est), micros in counters.spend_micros().items():
        got[team] = got.get(team, 0) + micros
    assert got == {("none" if t == "" else t): v for t, v in by_team.items()}
    tokens = counters.tokens()
    assert sum(v for k, v in tokens.items() if k[3] == "input") == sum(
        int(e.fields["input_tokens"]) for e in spend_entries
    )
    models = {k[2] for k in counters.spend_micros()}
    assert "other" in models  # my-own-llm is not in the price table
    assert "my-own-llm" not in models

    text = scrape(counters)
    found = samples(text)
    total = sum(v for k, v in found.items() if k[0] == "keeptrusts_spend_total")
    assert math.isclose(total, sum(int(e.fields["cost"]) for e in spend_entries) / USD)
    assert (
        "keeptrusts_tokens_total",
        (
            ("consumer_group", "engineering"),
            ("kind", "output"),
            ("model", "gpt-4o"),
            ("team", "team_eng"),
        ),
    ) in found

    # burn buckets now exist: depletion is finite and positive for wallets that spent
    reader = WalletSnapshotReader.from_settings(cfg.redis, cfg.organization.id)
    try:
        found = samples(scrape(WalletCollector(reader.read, cfg.enforcement.low_balance_ratio)))
    finally:
        reader.close()
    depl = wallet_value(found, "keeptrusts_wallet_projected_depletion_seconds", "team:team_eng")
    assert 0 < depl < math.inf
    assert wallet_value(found, "keeptrusts_wallet_burn_rate", "team:team_eng") > 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_scrape_with_redis_down_reports_failure_and_counts_error() -> None:
    settings = RedisSettings(
        url=f"redis://127.0.0.1:{_closed_port()}/0", socket_timeout_seconds=0.2
    )
    reader = WalletSnapshotReader.from_settings(settings, "acme")
    before = process_metrics.STORE_ERRORS.labels("scrape")._value.get()
    try:
        found = samples(
            scrape(
                WalletCollector(reader.read, make_config("redis://x").enforcement.low_balance_ratio)
            )
        )
    finally:
        reader.close()
    assert found[("keeptrusts_wallet_scrape_success", ())] == 0.0
    assert not [k for k in found if k[0] == "keeptrusts_wallet_balance"]
    assert process_metrics.STORE_ERRORS.labels("scrape")._value.get() == before + 1


def test_concurrent_scrapes_share_one_read() -> None:
    calls = []

    def read() -> Any:
        calls.append(1)
        raise RuntimeError("boom")

    collector = WalletCollector(
        read, make_config("redis://x").enforcement.low_balance_ratio, ttl=60
    )
    scrape(collector)
    scrape(collector)
    assert len(calls) == 1


def test_real_metrics_endpoint(redis_url: str) -> None:
    cfg = make_config(redis_url)
    run(_history(cfg))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> str:
        app = SimpleNamespace(config=cfg, prices=PriceTable.from_config(cfg), extras={})
        obs = start_metrics_server(app, port, host="127.0.0.1")  # type: ignore[arg-type]
        try:
            for _ in range(100):  # the ledger consumer runs on this loop
                await asyncio.sleep(0.05)
                if obs.counters.spend_micros():
                    break
            await asyncio.sleep(1.1)  # past the scrape cache
            return await asyncio.to_thread(
                lambda: (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
            )
        finally:
            await obs.close()

    text = run(go())
    found = samples(text)

    async def support_balance() -> int:
        async with services(cfg) as (svc, _):
            return (await svc.wallet("team:team_support")).balance

    balance = run(support_balance())
    assert wallet_value(found, "keeptrusts_wallet_balance", "team:team_support") == balance / USD
    assert found[("keeptrusts_wallet_scrape_success", ())] == 1.0
    assert any(k[0] == "keeptrusts_spend_total" for k in found)
    assert "keeptrusts_authz_decisions" in text  # the process metrics are on the same endpoint


def test_build_observability_registers_on_given_registry(redis_url: str) -> None:
    cfg = make_config(redis_url)
    reg = CollectorRegistry()
    obs = build_observability(cfg, None, registry=reg)
    try:
        names = {f.name for f in reg.collect()}
        assert {"keeptrusts_wallet_balance", "keeptrusts_spend", "keeptrusts_tokens"} <= names
    finally:
        run(obs.close())
