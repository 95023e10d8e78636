"""The team leads' CLI commands through the real wallet API (Envoy transcoder, serve, Redis):
a team token re-splits and asks for a top-up, a billing token approves it."""

from __future__ import annotations

import json

import pytest

from keeptrusts_authz.cli.main import main
from tests.api.conftest import TOKENS, Api

pytestmark = pytest.mark.envoy


def test_team_lead_cli_resplit_and_topup(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api.fund("team_engineering", "100")
    monkeypatch.setenv("KEEPTRUSTS_API_URL", api.url)
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["team"])
    capsys.readouterr()

    assert main(["team-allocate", "--team", "team_engineering", "--user", "alice",
                 "--amount", "30"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "by eng-lead" in out and "user:alice: balance 30.00" in out
    assert (
        main(["team-reclaim", "--team", "team_engineering", "--user", "alice", "--amount", "50"])
        == 4
    )  # fmt: skip  (alice has 30)
    assert "insufficient funds" in capsys.readouterr().err
    assert (
        main(["team-allocate", "--team", "team_support", "--user", "bob", "--amount", "1"]) == 2
    )  # fmt: skip  (403: not its team)

    assert main(["topup-request", "--team", "team_engineering", "--amount", "25",
                 "--description", "evals", "--json"]) == 0  # fmt: skip
    topup = json.loads(capsys.readouterr().out)
    assert topup["status"] == "pending"
    assert main(["topup-approve", topup["id"]]) == 2  # a team token cannot decide
    capsys.readouterr()

    monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKENS["billing"])
    assert main(["topups", "--status", "pending"]) == 0
    assert topup["id"] in capsys.readouterr().out
    assert main(["topup-approve", topup["id"], "--reason", "ok"]) == 0
    assert f"top-up {topup['id']}: approved by finance" in capsys.readouterr().out
    assert main(["topup-approve", topup["id"]]) == 4  # already approved: 409
    capsys.readouterr()
    assert api.wallet_hashes()["team:team_engineering"]["balance"] == str(95 * 1_000_000)
    ops = [(e["op"], e["actor"]) for e in api.ledger()]
    assert ops[-2:] == [("transfer", "eng-lead"), ("allocate", "finance")]
