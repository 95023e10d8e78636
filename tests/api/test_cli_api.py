"""CLI money commands through the wallet API when KEEPTRUSTS_API_URL is set (and `make allocate`
both ways)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from keeptrusts_authz.cli.main import main
from tests.api.conftest import TOKENS, Api

pytestmark = pytest.mark.envoy
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def via_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("KEEPTRUSTS_API_URL", api.url + "/")
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["billing"])
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)  # no config, no Redis: the API only
    return api


def test_cli_money_commands_go_through_the_api(
    via_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["credit", "--amount", "5000", "--currency", "USD"]) == 0
    assert main(["allocate", "--team", "team_engineering", "--amount", "1200.00",
                 "--description", "Monthly AI allocation - Engineering"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "allocated 1200.00 USD from org to team:team_engineering (via the API)" in out
    assert main(["transfer", "--from-team", "team_engineering", "--to-team", "team_support",
                 "--amount", "200", "--idempotency-key", "t-1", "--json"]) == 0  # fmt: skip
    first = json.loads(capsys.readouterr().out)
    assert main(["transfer", "--from-team", "team_engineering", "--to-team", "team_support",
                 "--amount", "200", "--idempotency-key", "t-1", "--json"]) == 0  # fmt: skip
    again = json.loads(capsys.readouterr().out)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert main(["reclaim", "--team", "team_support", "--amount", "50"]) == 0
    assert "reclaimed 50.00 USD from team:team_support to org" in capsys.readouterr().out
    assert main(["balance", "--team", "team_engineering", "--json"]) == 0
    balance = json.loads(capsys.readouterr().out)
    assert balance["wallet"]["balance"] == "1000.00"
    assert main(["balance"]) == 0
    assert "team:team_support" in capsys.readouterr().out
    ledger = via_api.ledger()
    assert [e["op"] for e in ledger] == ["credit", "allocate", "transfer", "reclaim"]
    assert {e["actor"] for e in ledger} == {"finance"}  # the token's name, not the OS user

    # refusals keep the direct path's exit codes
    assert main(["allocate", "--team", "team_nope", "--amount", "1"]) == 4
    assert main(["allocate", "--team", "team_engineering", "--amount", "-1"]) == 2
    assert main(["allocate", "--team", "team_engineering", "--amount", "1e9"]) in (2, 4)
    assert "error:" in capsys.readouterr().err


def test_cli_api_auth_errors(via_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["viewer"])
    assert main(["credit", "--amount", "5", "--currency", "USD"]) == 2  # 403
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", "")
    assert main(["credit", "--amount", "5", "--currency", "USD"]) == 2
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["billing"])
    monkeypatch.setenv("KEEPTRUSTS_API_URL", "http://127.0.0.1:9")
    assert main(["credit", "--amount", "5", "--currency", "USD"]) == 3
    assert via_api.ledger() == []


def _make_is_ready() -> bool:
    stamp = ROOT / ".venv/.installed"
    return stamp.exists() and stamp.stat().st_mtime >= (ROOT / "pyproject.toml").stat().st_mtime


@pytest.mark.skipif(not _make_is_ready(), reason="make would reinstall the venv first")
def test_make_allocate_both_ways(api: Api) -> None:
    api.ok("POST", "/v1/wallets/credit", {"amount": "100", "currency": "USD"})
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPTRUSTS_", "MAKE"))}
    direct = {**base, "KEEPTRUSTS_CONFIG": str(api.stack.config_path)}
    via = {**base, "KEEPTRUSTS_API_URL": api.url, "KEEPTRUSTS_API_TOKEN": TOKENS["billing"]}
    for env in (direct, via):
        proc = subprocess.run(
            ["make", "-s", "allocate", "TEAM=team_engineering", "AMOUNT=10"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    actors = [e["actor"] for e in api.ledger() if e["op"] == "allocate"]
    assert len(actors) == 2 and actors[0].startswith("cli:") and actors[1] == "finance"
    assert api.wallet_hashes()["team:team_engineering"]["balance"] == str(20_000_000)
