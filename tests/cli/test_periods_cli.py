"""Done-when of budget periods: the issue's config, `periods run` twice at the January boundary,
`periods status`, `report --period 2026-12`, `audit` (CLI in-process against the real Redis)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.config.loader import load_config
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import SettleRequest
from tests.wallets.support import USD, reserve_req, run

CONFIG = """\
organization:
  id: acme
  currency: USD
consumer_groups:
- name: engineering
  api_key: kt_cg_engineering_prod
  wallet_team_id: team_engineering
budget_calendar:
  timezone: America/New_York
  fiscal_year_start_month: 2
budgets:
- team_id: team_engineering
  amount: 1200.00
  period: monthly
  rollover: carry_capped
  carry_cap: 600.00
"""


@pytest.fixture
def cli_env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "keeptrusts.yaml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("KEEPTRUSTS_CONFIG", str(cfg))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)
    return cfg


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _spend(cfg_path: Path, cost: int) -> None:
    cfg = load_config(str(cfg_path))
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    try:
        wallet = "team:team_engineering"
        req = reserve_req(cost, (wallet,), "block", team="team_engineering")
        await store.reserve(req)
        await store.settle(SettleRequest(req.reservation_id, cost, False))
    finally:
        await store.close()


def test_done_when_january_allocated_once(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "credit", "--amount", "5000", "--currency", "USD")[0] == 0
    code, out, _ = cli(capsys, "periods", "run", "--now", "2026-12-01T00:00:05-05:00")
    assert code == 0 and "2026-12" in out and "applied" in out
    run(_spend(cli_env, 300 * USD))  # December: 900 unspent, of which 600 carry

    for attempt in range(2):
        code, out, _ = cli(capsys, "periods", "run", "--now", "2027-01-01T00:00:05-05:00")
        assert code == 0, out
        assert ("2027-01" in out and "applied" in out) if attempt == 0 else "nothing due" in out

    code, out, _ = cli(capsys, "periods", "status", "--now", "2027-01-01T00:00:05-05:00", "--json")
    assert code == 0
    [st] = json.loads(out)["budgets"]
    assert st["period"] == "2027-01" and st["applied"] is True
    assert (st["allocated"], st["carried_in"], st["returned"]) == ("1200.00", "600.00", "300.00")
    assert st["balance"] == "1800.00" and st["next_boundary"] == "2027-02-01T00:00:00-05:00"
    code, out, _ = cli(capsys, "periods", "status", "--now", "2027-01-01T00:00:05-05:00")
    assert code == 0 and "team:team_engineering" in out and "2027-01" in out

    code, out, _ = cli(capsys, "balance", "--json")
    team = next(w for w in json.loads(out)["wallets"] if w["id"] == "team:team_engineering")
    assert team["balance_micros"] == 1800 * USD
    org = next(w for w in json.loads(out)["wallets"] if w["id"] == "org")
    assert org["balance_micros"] == (5000 - 1200 - 1200 + 300) * USD

    code, out, _ = cli(capsys, "report", "--period", "2026-12", "--format", "csv")
    assert code == 0, out
    rows = {r["team"]: r for r in csv.DictReader(io.StringIO(out))}
    dec = rows["team_engineering"]
    assert (dec["allocated"], dec["spent"], dec["carried_in"], dec["used_pct"]) == (
        "1200.00",
        "300.00",
        "0.00",
        "25",
    )
    code, out, _ = cli(capsys, "report", "--period", "2027-01", "--format", "csv")
    jan = {r["team"]: r for r in csv.DictReader(io.StringIO(out))}["team_engineering"]
    assert (jan["allocated"], jan["carried_in"], jan["returned"]) == ("1200.00", "600.00", "300.00")
    for pid in ("2027-Q1", "2026-W49", "2026"):
        assert cli(capsys, "report", "--period", pid, "--format", "json")[0] == 0
    code, _, err = cli(capsys, "report", "--period", "2026-W54")
    assert code == 2 and "has no ISO week 54" in err
    code, _, err = cli(capsys, "report", "--period", "2026-13")
    assert code == 2 and "not a period id" in err

    code, out, _ = cli(capsys, "audit")
    assert code == 0, out
