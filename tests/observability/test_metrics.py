"""Scrape-time wallet gauges and the Lua-kept usage counters / burn against a real Redis."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from keeptrusts_authz.config.models import RedisSettings
from keeptrusts_authz.metrics import registry as process_metrics
from keeptrusts_authz.metrics.http import build_observability
from keeptrusts_authz.metrics.usage import UsageLabels, usage_totals
from keeptrusts_authz.metrics.wallets import WalletCollector
from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.server import build_app
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.observability import WalletSnapshotReader, burn_window_start
from keeptrusts_authz.wallets.models import LedgerEntry, ReserveRequest, SettleRequest
from tests.observability.support import USD, make_config, rid, run, services, spend


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wallet_key(name: str, wallet: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Wallet gauge labels: scope, wallet and the bare team id (one team label convention)."""
    scope, _, owner = wallet.partition(":")
    team = owner if scope == "team" else ""
    return (name, (("scope", scope), ("team", team), ("wallet", wallet)))


def wallet_value(found: dict[Any, float], name: str, wallet: str) -> float:
    return found[wallet_key(name, wallet)]


def scrape(collector: Any) -> str:
    reg = CollectorRegistry()
    reg.register(collector)
    return generate_latest(reg).decode()


async def _history(cfg: Any) -> None:
    async with services(cfg) as (svc, _obs):
        await svc.credit(10_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_eng", 1_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_support", 100 * USD, "USD", "seed", "test")
        await svc.allocate("user:bob", 5 * USD, "USD", "seed", "test", team="team_eng")
        await svc.allocate(
            "user:carol", 2 * USD, "USD", "seed", "test", team="team_eng"
        )  # never spends
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
            team = w.owner if w.scope == "team" else ""
            key = (
                "keeptrusts_wallet_status",
                (("scope", w.scope), ("status", status), ("team", team), ("wallet", w.id)),
            )
            assert found[key] == (1.0 if w.status == status else 0.0)
    # team_support: 17 left of 107: low; bob reclaimed to 0: depleted
    statuses = {w.id: w.status for w in expected}
    assert statuses["team:team_support"] == "low"
    assert statuses["user:bob"] == "depleted"
    assert found[("keeptrusts_open_reservations", ())] == 0.0
    assert all(math.isfinite(v) for v in found.values())
    # the settles recorded burn: wallets that spent have a finite projection, bob (depleted) 0,
    # carol (never spent) none at all (never +Inf)
    depletion = {
        dict(k[1])["wallet"]: v
        for k, v in found.items()
        if k[0] == "keeptrusts_wallet_projected_depletion_seconds"
    }
    assert set(depletion) == {"org", "team:team_eng", "team:team_support", "user:bob"}
    assert depletion["user:bob"] == 0.0
    assert all(0 < depletion[w] < math.inf for w in ("org", "team:team_eng", "team:team_support"))


MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "my-own-llm")
SNAPSHOTS = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
GROUPS = (("team_eng", "engineering"), ("team_support", "support"), ("", "research"))


async def _random_history(cfg: Any, seed: int) -> None:
    """Settles (real and estimated, some with a label, some replayed), releases and expiries."""
    rng = random.Random(seed)
    async with services(cfg) as (svc, _obs):
        await svc.credit(100_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_eng", 10_000 * USD, "USD", "seed", "test")
        await svc.allocate("team:team_support", 10_000 * USD, "USD", "seed", "test")
        closed: list[str] = []
        for _ in range(120):
            team, group = rng.choice(GROUPS)
            model = rng.choice(MODELS)
            r = rid()
            amount = rng.randrange(1, 5 * USD)
            expires = rng.random() < 0.15
            res = await svc.reserve(
                ReserveRequest(
                    reservation_id=r,
                    candidates=(f"team:{team}" if team else "org",),
                    amount=amount,
                    policy="block",
                    overdraft_wallet=None,
                    ttl_ms=1 if expires else 600_000,
                    team=team,
                    group=group,
                    user="u",
                    model=model,
                )
            )
            assert res.allowed
            if expires:
                continue
            kind = rng.random()
            if kind < 0.1:
                await svc.release(r, "provider_status_503")
            else:
                estimated = kind < 0.3
                # The dated snapshot the provider reports (an explicit alias: names are never
                # resolved by stripping a date, so it must be one genai-prices lists).
                reported = SNAPSHOTS.get(model, model)
                await svc.settle(
                    SettleRequest(
                        r,
                        amount if estimated else rng.randrange(0, amount + 1),
                        estimated=estimated,
                        input_tokens=0 if estimated else rng.randrange(0, 5000),
                        output_tokens=0 if estimated else rng.randrange(0, 2000),
                        cached_tokens=0 if estimated else rng.choice((0, rng.randrange(0, 900))),
                        model=reported,
                        label_model=rng.choice((model, "")),
                    )
                )
            closed.append(r)
            if closed and rng.random() < 0.2:  # a replayed estimate changes nothing
                again = await svc.settle(SettleRequest(rng.choice(closed), 1, True, 1, 1, 1))
                assert again.outcome == "already_closed"
        await asyncio.sleep(0.01)
        while await svc.expire_due(50):
            pass


def _ledger_totals(
    entries: list[LedgerEntry], labels: UsageLabels
) -> tuple[dict[Any, int], dict[Any, int], dict[Any, int], dict[str, int]]:
    """The oracle: spend / tokens / requests by bounded labels, and spend per wallet."""
    spend_: dict[Any, int] = {}
    tokens: dict[Any, int] = {}
    requests: dict[Any, int] = {}
    burn: dict[str, int] = {}
    for e in entries:
        if e.op not in ("settle", "expire"):
            continue
        f = e.fields
        base = (labels.team(f["team"]), labels.group(f["group"]), labels.model(f["model"]))
        est = "true" if e.op == "expire" or f["estimated"] == "1" else "false"
        cost = int(f["cost"])
        spend_[(*base, est)] = spend_.get((*base, est), 0) + cost
        requests[base] = requests.get(base, 0) + 1
        for kind in ("input", "output", "cached"):
            n = int(f.get(f"{kind}_tokens") or 0)
            if n:
                tokens[(*base, kind)] = tokens.get((*base, kind), 0) + n
        if cost:
            burn[e.wallet] = burn.get(e.wallet, 0) + cost
    return spend_, tokens, requests, burn


def test_counters_equal_ledger_sums_after_random_histories(redis_url: str) -> None:
    cfg = make_config(redis_url)
    labels = UsageLabels.from_config(cfg, PriceTable.from_config(cfg))
    for seed in (1, 2, 3):
        run(_random_history(cfg, seed))  # accumulates: the counters are totals since the start

        async def ledger() -> list[LedgerEntry]:
            async with services(cfg) as (svc, _obs):
                return [e async for e in svc.store.iter_ledger()]

        entries = run(ledger())
        spend_, tokens, requests, burn = _ledger_totals(entries, labels)
        reader = WalletSnapshotReader.from_settings(cfg.redis, cfg.organization.id)
        try:
            snap = reader.read()
            collector = WalletCollector(
                lambda snap=snap: snap, cfg.enforcement.low_balance_ratio, usage=labels
            )
            found = samples(scrape(collector))
        finally:
            reader.close()
        totals = usage_totals(snap.usage, labels)
        assert totals.spend == spend_  # exact, in micros
        assert totals.tokens == tokens
        assert totals.requests == requests
        assert snap.burn == burn  # everything happened today
        assert {k[2] for k in totals.spend} <= {
            "gpt-4o",
            "gpt-4o-mini",
            "claude-3-5-sonnet",
            "other",
        }
        assert ("none", "research") in {k[:2] for k in totals.spend}
        for (team, group, model, est), micros in spend_.items():
            key = (
                "keeptrusts_spend_total",
                (("consumer_group", group), ("estimated", est), ("model", model), ("team", team)),
            )
            assert found[key] == micros / USD
        for (team, group, model, kind), n in tokens.items():
            key = (
                "keeptrusts_tokens_total",
                (("consumer_group", group), ("kind", kind), ("model", model), ("team", team)),
            )
            assert found[key] == n
        for (team, group, model), n in requests.items():
            key = (
                "keeptrusts_settled_requests_total",
                (("consumer_group", group), ("model", model), ("team", team)),
            )
            assert found[key] == n
        assert sum(v for k, v in found.items() if k[0] == "keeptrusts_spend_total") == (
            pytest.approx(sum(spend_.values()) / USD)
        )


def test_unknown_labels_collapse_to_other() -> None:
    labels = UsageLabels(["team_eng"], ["engineering"], lambda m: "gpt-4o" if "gpt" in m else None)
    totals = usage_totals(
        {
            "spend|team_eng|engineering|0|gpt-4o": 5,
            "spend|team_gone|engineering|0|gpt-4o": 2,
            "spend|team_old|engineering|0|gpt-4o": 3,
            "spend||research|1|mystery|model": 7,  # the label may hold '|'
            "requests|team_eng|engineering|gpt-4o-2024-08-06": 1,
            "requests|team_eng|engineering|gpt-4o": 2,
            "tokens|team_eng|engineering|input|gpt-4o": 10,
            "tokens|team_eng|engineering|bogus|gpt-4o": 99,  # malformed: skipped
            "spend|team_eng|engineering|maybe|gpt-4o": 99,
            "spend|team_eng": 99,
            "other|x|y|z": 99,
        },
        labels,
    )
    assert totals.spend == {
        ("team_eng", "engineering", "gpt-4o", "false"): 5,
        ("other", "engineering", "gpt-4o", "false"): 5,
        ("none", "other", "other", "true"): 7,
    }
    assert totals.requests == {("team_eng", "engineering", "gpt-4o"): 3}
    assert totals.tokens == {("team_eng", "engineering", "gpt-4o", "input"): 10}


def test_burn_based_depletion_projection(redis_url: str) -> None:
    cfg = make_config(redis_url)
    run(_history(cfg))
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    k = Keys(cfg.organization.id)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        spent_today = int(client.hget(k.burn(today.isoformat()), "team:team_eng") or 0)
        assert spent_today == 1_234_567 + 2_000_001  # the settles of _history
        # older buckets, as the scripts would have written them: 3 and 7 days ago count, 8 not
        client.hincrby(k.burn((today - timedelta(days=3)).isoformat()), "team:team_eng", 40 * USD)
        client.hincrby(k.burn((today - timedelta(days=7)).isoformat()), "team:team_eng", 10 * USD)
        client.hincrby(k.burn((today - timedelta(days=8)).isoformat()), "team:team_eng", 999 * USD)
        balance = int(client.hget(k.wallet("team:team_eng"), "balance"))
    finally:
        client.close()
    reader = WalletSnapshotReader.from_settings(cfg.redis, cfg.organization.id)
    try:
        snap = reader.read(now)
        found = samples(scrape(WalletCollector(lambda: snap, cfg.enforcement.low_balance_ratio)))
    finally:
        reader.close()
    burned = spent_today + 50 * USD
    assert snap.burn["team:team_eng"] == burned
    window = now - burn_window_start(now)
    assert 7 * 86400 <= window <= 8 * 86400
    rate = burned / USD / window
    per_day = burned * 86400 // math.ceil(window) / USD  # floor micros per day, in units
    assert wallet_value(found, "keeptrusts_wallet_burn_rate_per_day", "team:team_eng") == per_day
    assert per_day == pytest.approx(rate * 86400, rel=1e-5)
    assert wallet_value(
        found, "keeptrusts_wallet_projected_depletion_seconds", "team:team_eng"
    ) == pytest.approx(balance / USD / rate)
    # carol never spent: a zero burn rate and no projection
    assert wallet_value(found, "keeptrusts_wallet_burn_rate_per_day", "user:carol") == 0.0
    assert wallet_key("keeptrusts_wallet_projected_depletion_seconds", "user:carol") not in found


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
        app = build_app(cfg)
        app.observability.start(port, host="127.0.0.1")
        try:
            return await asyncio.to_thread(
                lambda: (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
            )
        finally:
            await app.close()

    text = run(go())
    found = samples(text)

    async def support_balance() -> int:
        async with services(cfg) as (svc, _):
            return (await svc.wallet("team:team_support")).balance

    balance = run(support_balance())
    assert wallet_value(found, "keeptrusts_wallet_balance", "team:team_support") == balance / USD
    assert found[("keeptrusts_wallet_scrape_success", ())] == 1.0
    spend_total = sum(v for k, v in found.items() if k[0] == "keeptrusts_spend_total")
    assert spend_total == pytest.approx((1_234_567 + 2_000_001 + 90 * USD + 10) / USD)
    assert "keeptrusts_authz_decisions" in text  # the process metrics are on the same endpoint


def test_build_observability_registers_on_given_registry(redis_url: str) -> None:
    cfg = make_config(redis_url)
    reg = CollectorRegistry()
    reader = WalletSnapshotReader.from_settings(cfg.redis, cfg.organization.id)
    obs = build_observability(cfg, None, reader, registry=reg)
    try:
        names = {f.name for f in reg.collect()}
        assert {
            "keeptrusts_wallet_balance",
            "keeptrusts_spend",
            "keeptrusts_tokens",
            "keeptrusts_settled_requests",
        } <= names
    finally:
        run(obs.close())
        reader.close()
    assert not {f.name for f in reg.collect()}  # close unregisters the collector
