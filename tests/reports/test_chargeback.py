"""Chargeback reports from the ledger: totals reconcile to the micro, CSV/HTML/JSON render."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeptrusts_authz.cli.main import main as cli_main
from keeptrusts_authz.errors import InvalidInput, KeeptrustsError
from keeptrusts_authz.money import MICROS_PER_UNIT
from keeptrusts_authz.reports.chargeback import (
    TOTAL,
    GroupBy,
    Period,
    Report,
    build_report,
    parse_period,
)
from keeptrusts_authz.reports.render import chargeback_report, to_csv, to_html, to_json
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from tests.observability.support import USD, make_config, rid, run, services, spend

WALLETS = ("team:team_eng", "team:team_support", "user:bob", "org")
TEAM_OF = {"team:team_eng": "team_eng", "team:team_support": "team_support"}

Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.sampled_from(WALLETS[:3]), st.integers(1, 50 * USD)),
        st.tuples(st.just("transfer"), st.sampled_from(WALLETS[:3]), st.integers(1, 20 * USD)),
        st.tuples(st.just("reclaim"), st.sampled_from(WALLETS[:3]), st.integers(1, 20 * USD)),
        st.tuples(
            st.just("spend"),
            st.sampled_from(WALLETS),
            st.integers(0, 5 * USD),
            st.booleans(),
            st.sampled_from(["gpt-4o", "gpt-4o-mini", "weird-model"]),
        ),
        st.tuples(st.just("release"), st.sampled_from(WALLETS), st.integers(1, USD)),
        st.tuples(st.just("expire"), st.sampled_from(WALLETS), st.integers(1, USD)),
        st.tuples(st.just("open"), st.sampled_from(WALLETS), st.integers(1, USD)),
        # expired at its estimate, then corrected by the real cost
        st.tuples(st.just("late"), st.sampled_from(WALLETS), st.integers(0, USD)),
    ),
    max_size=14,
)


def today_period() -> Period:
    now = datetime.now(UTC).date()
    return parse_period(
        None, (now - timedelta(days=1)).isoformat(), (now + timedelta(1)).isoformat()
    )


def _reserve(wallet: str, amount: int, ttl_ms: int = 600_000, model: str = "gpt-4o") -> Any:
    team = TEAM_OF.get(wallet, "team_eng" if wallet == "user:bob" else "")
    return ReserveRequest(
        reservation_id=rid(),
        candidates=(wallet,),
        amount=amount,
        policy="block",
        overdraft_wallet=None,
        ttl_ms=ttl_ms,
        team=team,
        group="research" if wallet == "org" else "engineering",
        user="bob",
        model=model,
    )


async def apply_ops(svc: WalletService, history: list[Op]) -> None:
    await svc.credit(100 * USD, "USD", "seed", "test")
    for op in history:
        try:
            kind, wallet = op[0], op[1]
            if kind == "allocate":
                await svc.allocate(wallet, op[2], "USD", "a", "test")
            elif kind == "transfer":
                dst = "team:team_support" if wallet != "team:team_support" else "team:team_eng"
                await svc.transfer(wallet, dst, op[2], "USD", "t", "test")
            elif kind == "reclaim":
                await svc.reclaim(wallet, op[2], "USD", "r", "test")
            elif kind == "spend":
                req = _reserve(wallet, 5 * USD, model=op[4])
                if (await svc.reserve(req)).allowed:
                    r = req.reservation_id
                    await svc.settle(
                        SettleRequest(
                            r, op[2], estimated=op[3], input_tokens=7, output_tokens=3, model=op[4]
                        )
                    )
            elif kind == "late":
                req = _reserve(wallet, USD, ttl_ms=1)
                if (await svc.reserve(req)).allowed:
                    await asyncio.sleep(0.003)
                    await svc.expire_due()
                    real = SettleRequest(req.reservation_id, op[2], False, 11, 4, 2)
                    assert (await svc.settle(real)).outcome == "corrected"
            elif kind in ("release", "expire", "open"):
                req = _reserve(wallet, op[2], ttl_ms=1 if kind == "expire" else 600_000)
                res = await svc.reserve(req)
                if res.allowed and kind == "release":
                    await svc.release(req.reservation_id)
                if kind == "expire":
                    await asyncio.sleep(0.003)
                    await svc.expire_due()
        except KeeptrustsError:
            continue  # refused (insufficient funds...): nothing moved


async def ledger_totals(svc: WalletService) -> dict[str, int]:
    t = {"credited": 0, "allocated": 0, "spent": 0, "reclaimed": 0, "transferred": 0}
    async for e in svc.store.iter_ledger():
        if e.op == "credit":
            t["credited"] += e.amount
        elif e.op == "allocate":
            t["allocated"] += e.amount
        elif e.op == "reclaim":
            t["reclaimed"] += e.amount
        elif e.op == "transfer":
            t["transferred"] += e.amount
        elif e.op in ("settle", "expire"):
            t["spent"] += int(e.fields["cost"])
        elif e.op == "correct":
            t["spent"] += int(e.fields["cost"]) - int(e.fields["previous_cost"])
    return t


def check_csv(report: Report) -> None:
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    header, body, total = rows[0], rows[1:-1], rows[-1]
    assert header[0] == report.group_by and total[0] == TOTAL
    for i, column in enumerate(header[1:-1], start=1):
        assert sum(Decimal(r[i]) for r in body) == Decimal(total[i]), column


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=ops)
def test_report_totals_equal_ledger_totals(redis_url: str, history: list[Op]) -> None:
    cfg = make_config(redis_url, org=f"o{uuid.uuid4().hex[:12]}")
    period = today_period()

    async def go() -> None:
        async with services(cfg) as (svc, _obs):
            await apply_ops(svc, history)
            totals = await ledger_totals(svc)
            for group_by in ("team", "consumer_group", "model", "user"):
                report = await build_report(svc.store, period, group_by)  # type: ignore[arg-type]
                assert report.check() == []
                assert report.totals.spent == totals["spent"]
                assert report.totals.spent == (
                    report.totals.spent_real + report.totals.spent_estimated
                )
                if group_by in ("team", "user"):
                    assert report.totals.allocated == totals["allocated"]
                    assert report.totals.reclaimed == totals["reclaimed"]
                    assert report.totals.transferred_in == totals["transferred"]
                    # every unit credited is either spent or still in some wallet
                    assert report.totals.remaining + report.org_remaining == (
                        totals["credited"] - totals["spent"]
                    )
                check_csv(report)

    run(go())


async def _fixed_history(svc: WalletService) -> None:
    await svc.credit(1_000 * USD, "USD", "seed", "test")
    await svc.allocate("team:team_eng", 300 * USD, "USD", "a", "test")
    await svc.allocate("team:team_support", 100 * USD, "USD", "a", "test")
    await svc.transfer("team:team_eng", "team:team_support", 25 * USD, "USD", "t", "test")
    await svc.reclaim("team:team_support", 5 * USD, "USD", "r", "test")
    await spend(svc, 2 * USD, 1_500_000)
    await spend(svc, 2 * USD, 333_333, estimated=True, model="gpt-4o-mini")
    await spend(svc, 2 * USD, 700_000, wallet="team:team_support", team="team_support")
    await spend(svc, USD, 250_000, wallet="org", team="team_eng", group="engineering")
    await spend(svc, USD, 10, wallet="org", team="", group="research", model="<b>x</b>")


def _store_denials(url: str, org: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    month = datetime.now(UTC).strftime("%Y-%m")
    client.hset(f"kt:{{{org}}}:stats:{month}", mapping={"team_eng|blocked": 3, "team_eng|held": 1})
    client.close()


def _fixed_report(redis_url: str, group_by: GroupBy = "team") -> Report:
    cfg = make_config(redis_url)

    async def go() -> Report:
        async with services(cfg) as (svc, _):
            await _fixed_history(svc)
            _store_denials(redis_url, cfg.organization.id)
            month = datetime.now(UTC).strftime("%Y-%m")
            return await build_report(
                svc.store, parse_period(month), group_by, currency="USD", org="acme"
            )

    return run(go())


def test_team_columns(redis_url: str) -> None:
    report = _fixed_report(redis_url)
    rows = {r.key: r for r in report.rows}
    eng, sup = rows["team_eng"], rows["team_support"]
    assert eng.allocated == 300 * USD and eng.transferred_out == 25 * USD
    assert sup.transferred_in == 25 * USD and sup.reclaimed == 5 * USD
    assert eng.spent == 1_500_000 + 333_333 + 250_000
    assert eng.spent_estimated == 333_333 and eng.spent_real == 1_750_000
    assert eng.org_backstop_spent == 250_000
    assert eng.blocked == 3 and eng.held == 1
    assert eng.remaining == 275 * USD - 1_500_000 - 333_333
    assert rows["(no team)"].spent == 10
    assert report.check() == []


def test_html_is_self_contained_with_chart_and_table(redis_url: str) -> None:
    report = _fixed_report(redis_url)
    page = to_html(report)

    class Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.attrs: list[tuple[str, str | None]] = []
            self.cells: list[str] = []
            self._in_td = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self.attrs += attrs
            self._in_td = tag == "td"

        def handle_endtag(self, tag: str) -> None:
            if tag == "td":
                self._in_td = False

        def handle_data(self, data: str) -> None:
            if self._in_td:
                self.cells.append(data)

    p = Parser()
    p.feed(page)
    p.close()
    assert "svg" in p.tags and "rect" in p.tags and "table" in p.tags
    # two tables (budget, usage), each: header + rows + totals
    assert p.tags.count("tr") == 2 * (len(report.rows) + 2)
    for forbidden in ("script", "link", "img", "iframe", "object"):
        assert forbidden not in p.tags
    assert not [v for k, v in p.attrs if k in ("src", "href") and v]
    assert "@import" not in page and "url(" not in page
    assert "<b>x</b>" not in page  # ledger text is escaped
    assert "TOTAL" in p.cells and "team_eng" in p.cells
    assert 'id="daily-spend"' in page


def test_json_and_other_groupings(redis_url: str) -> None:
    report = _fixed_report(redis_url, "model")
    doc = json.loads(to_json(report))
    assert doc["reconciled"] is True
    keys = {r["model"] for r in doc["rows"]}
    assert {"gpt-4o", "gpt-4o-mini", "<b>x</b>"} <= keys
    assert doc["totals"]["spent_micros"] == sum(r["spent_micros"] for r in doc["rows"])
    assert "allocated" not in doc["columns"]


def test_api_function(redis_url: str) -> None:
    cfg = make_config(redis_url)

    async def go() -> tuple[str, bytes]:
        async with services(cfg) as (svc, _):
            await _fixed_history(svc)
            month = datetime.now(UTC).strftime("%Y-%m")
            return await chargeback_report(svc, month, "csv", "team")

    ctype, body = run(go())
    assert ctype.startswith("text/csv")
    assert body.decode().splitlines()[-1].startswith("TOTAL,400.00,25.00,25.00,5.00,2.783343,")
    with pytest.raises(InvalidInput):
        chargeback_report(object(), "2026-13", "csv", "team")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        chargeback_report(object(), "2026-11", "pdf", "team")  # type: ignore[arg-type]


def test_period_parsing() -> None:
    p = parse_period("2026-12")
    assert p.start == datetime(2026, 12, 1, tzinfo=UTC) and p.end == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert p.months() == ["2026-12"] and len(p.days()) == 31
    q = parse_period("2026-11", "2026-11-03", "2026-11-09")
    assert len(q.days()) == 7 and q.months() == ["2026-11"] and not q.whole_months
    for bad in (
        ("2026-1", None, None),
        (None, "2026-11-03", None),
        ("2026-11", "2026-10-30", "2026-11-02"),
    ):
        with pytest.raises(InvalidInput):
            parse_period(*bad)


def test_cli_report(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(redis_url)

    async def seed() -> None:
        async with services(cfg) as (svc, _):
            await _fixed_history(svc)

    run(seed())
    conf = tmp_path / "keeptrusts.yaml"
    conf.write_text(
        "organization: {id: acme, currency: USD}\n"
        "consumer_groups:\n"
        "- {name: engineering, api_key: kt_cg_eng, wallet_team_id: team_eng}\n"
        f"redis: {{url: '{redis_url}'}}\n"
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    out = tmp_path / "reports" / f"chargeback-{month}.csv"
    args = ["report", "--config", str(conf), "--period", month, "--format", "csv"]
    assert cli_main([*args, "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("team,allocated,") and lines[-1].startswith("TOTAL,")
    html = tmp_path / "r.html"
    assert cli_main([*args[:-1], "html", "--output", str(html), "--group-by", "user"]) == 0
    assert "<svg" in html.read_text()
    capsys.readouterr()
    assert cli_main([*args[:-1], "json"]) == 0
    assert json.loads(capsys.readouterr().out)["reconciled"] is True
    assert cli_main(["report", "--config", str(conf), "--period", "nope"]) == 2
    spent = Decimal(lines[-1].split(",")[lines[0].split(",").index("spent")])
    assert spent * MICROS_PER_UNIT == 1_500_000 + 333_333 + 700_000 + 250_000 + 10
