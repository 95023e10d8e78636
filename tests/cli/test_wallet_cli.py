"""The wallet CLI in-process (`main([...])`) against the real Redis, with a tmp config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeptrusts_authz.cli.main import main
from tests.wallets.support import drain_events, events_subscriber, raw_state, sync_client

CONFIG = """\
organization:
  id: acme
  currency: USD
consumer_groups:
- name: engineering
  api_key: kt_cg_engineering_prod
  wallet_team_id: team_engineering
- name: support
  api_key: kt_cg_support_prod
  wallet_team_id: team_support
cost_tracking:
  enabled: true
  wallet_enforcement: true
"""


@pytest.fixture
def cli_env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    cfg = tmp_path / "keeptrusts.yaml"
    cfg.write_text(CONFIG)
    monkeypatch.setenv("KEEPTRUSTS_CONFIG", str(cfg))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)  # direct path, not the wallet API
    return redis_url


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_done_when_credit_allocate_balance_audit(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(
        capsys, "credit", "--amount", "5000", "--currency", "USD", "--description", "Org credit"
    )
    assert code == 0 and "5000.00 USD" in out
    code, out, _ = cli(
        capsys,
        "allocate",
        "--team",
        "team_engineering",
        "--amount",
        "1200",
        "--currency",
        "USD",
        "--description",
        "Monthly AI allocation - Engineering",
    )
    assert code == 0 and "1200.00 USD" in out
    code, out, _ = cli(capsys, "balance")
    assert code == 0
    team_line = next(line for line in out.splitlines() if line.startswith("team:team_engineering"))
    assert "1200.00 USD" in team_line and "healthy" in team_line
    org_line = next(line for line in out.splitlines() if line.startswith("org"))
    assert "3800.00 USD" in org_line and "5000.00 USD" in org_line
    code, out, _ = cli(capsys, "balance", "--team", "team_engineering")
    assert code == 0 and "1200.00 USD" in out and "engineering     user > team" in out
    code, out, _ = cli(capsys, "balance", "--team", "team_engineering", "--json")
    data = json.loads(out)
    assert data["wallet"]["allocated_total"] == "1200.00"
    assert data["wallet"]["balance_micros"] == 1_200_000_000
    code, out, _ = cli(capsys, "ledger", "--limit", "50")
    assert code == 0 and "allocate" in out and "Monthly AI allocation - Engineering" in out
    assert "cli:" in out
    code, out, _ = cli(capsys, "ledger", "--limit", "1", "--json", "--wallet", "team_engineering")
    assert [e["op"] for e in json.loads(out)["entries"]] == ["allocate"]
    code, out, _ = cli(capsys, "audit")
    assert code == 0 and "audit ok" in out


def test_transfer_reclaim_and_idempotency_key(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "credit", "--amount", "100")[0] == 0
    assert cli(capsys, "allocate", "--team", "team_engineering", "--amount", "60")[0] == 0
    code, out, _ = cli(
        capsys,
        "transfer",
        "--from-team",
        "team_engineering",
        "--to-team",
        "team_support",
        "--amount",
        "10.5",
    )
    assert code == 0 and "10.50 USD" in out
    code, out, _ = cli(capsys, "reclaim", "--team", "team_support", "--amount", "0.5", "--json")
    assert code == 0 and json.loads(out)["balances"] == {
        "team:team_support": "10.00",
        "org": "40.50",
    }
    args = [
        "allocate",
        "--user",
        "bob",
        "--user-team",
        "team_engineering",
        "--amount",
        "1",
        "--idempotency-key",
        "req-1",
        "--json",
    ]
    first = json.loads(cli(capsys, *args)[1])
    second = json.loads(cli(capsys, *args)[1])
    assert not first["replayed"] and second["replayed"] and first["entry_id"] == second["entry_id"]
    code, _, err = cli(
        capsys,
        "allocate",
        "--user",
        "bob",
        "--user-team",
        "team_engineering",
        "--amount",
        "2",
        "--idempotency-key",
        "req-1",
    )
    assert code == 4 and "idempotency key" in err
    assert cli(capsys, "audit")[0] == 0


def test_direct_moves_wake_held_requests(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Straight against Redis (no wallet API), each move still publishes its funds event once."""
    with events_subscriber(cli_env) as events:
        assert cli(capsys, "credit", "--amount", "100")[0] == 0
        assert drain_events(events) == ["funds:org"]
        assert cli(capsys, "allocate", "--team", "team_engineering", "--amount", "60")[0] == 0
        assert drain_events(events) == ["funds:team:team_engineering"]
        move = ["--from-team", "team_engineering", "--to-team", "team_support", "--amount", "10"]
        assert cli(capsys, "transfer", *move)[0] == 0
        assert drain_events(events) == ["funds:team:team_support"]
        assert cli(capsys, "reclaim", "--team", "team_support", "--amount", "1")[0] == 0
        assert drain_events(events) == ["funds:org"]
        assert cli(capsys, "allocate", "--team", "team_engineering", "--amount", "999")[0] != 0
        assert drain_events(events) == []


BAD_AMOUNTS = [
    ("-5", "must not be negative"),
    ("0", "greater than zero"),
    ("NaN", "not a decimal number"),
    ("abc", "not a decimal number"),
    ("1.0000001", "6 decimal places"),
    ("inf", "not a decimal number"),
    ("1_000", "not a decimal number"),
    ("+5", "not a decimal number"),
    ("", "empty"),
]


@pytest.mark.parametrize(("amount", "message"), BAD_AMOUNTS)
@pytest.mark.parametrize("command", ["credit", "allocate", "reclaim", "transfer"])
def test_bad_amounts_exit_2_and_touch_nothing(
    cli_env: str, capsys: pytest.CaptureFixture[str], command: str, amount: str, message: str
) -> None:
    assert cli(capsys, "credit", "--amount", "100")[0] == 0
    assert cli(capsys, "allocate", "--team", "team_engineering", "--amount", "50")[0] == 0
    before = raw_state(cli_env)
    target = {
        "credit": [],
        "allocate": ["--team", "team_engineering"],
        "reclaim": ["--team", "team_engineering"],
        "transfer": ["--from-team", "team_engineering", "--to-team", "team_support"],
    }[command]
    code, _, err = cli(capsys, command, *target, "--amount", amount)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert raw_state(cli_env) == before


REFUSALS = [
    (
        ["credit", "--amount", "5", "--currency", "EUR"],
        2,
        "does not match the organization currency USD",
    ),
    (["reclaim", "--team", "team_ghost", "--amount", "1"], 4, "unknown wallet team:team_ghost"),
    (
        ["transfer", "--from-team", "team_ghost", "--to-team", "team_support", "--amount", "1"],
        4,
        "unknown wallet team:team_ghost",
    ),
    (
        ["transfer", "--from-team", "team_engineering", "--to-team", "team_ghost", "--amount", "1"],
        4,
        "unknown wallet team:team_ghost",
    ),
    (
        [
            "transfer",
            "--from-team",
            "team_engineering",
            "--to-team",
            "team_engineering",
            "--amount",
            "1",
        ],
        2,
        "cannot transfer a wallet to itself",
    ),
    (
        ["reclaim", "--team", "team_engineering", "--amount", "50.000001"],
        4,
        "insufficient funds in team:team_engineering: 50.00 USD available",
    ),
    (["allocate", "--team", "team_engineering", "--amount", "51"], 4, "insufficient funds in org"),
    (
        ["allocate", "--team", "team_unconfigured", "--amount", "1"],
        4,
        "unknown wallet team:team_unconfigured",
    ),
    (["balance", "--team", "team_ghost"], 4, "unknown wallet team:team_ghost"),
    (["ledger", "--limit", "0"], 2, "--limit"),
]


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    REFUSALS,
    ids=[" ".join(r[0][:2]) + f"-{i}" for i, r in enumerate(REFUSALS)],
)
def test_refusals_have_specific_messages_and_touch_nothing(
    cli_env: str, capsys: pytest.CaptureFixture[str], argv: list[str], exit_code: int, message: str
) -> None:
    assert cli(capsys, "credit", "--amount", "100")[0] == 0
    assert cli(capsys, "allocate", "--team", "team_engineering", "--amount", "50")[0] == 0
    before = raw_state(cli_env)
    code, _, err = cli(capsys, *argv)
    assert code == exit_code, err
    assert message in err and "Traceback" not in err
    assert raw_state(cli_env) == before


def test_json_errors_are_machine_readable(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "reclaim", "--team", "team_ghost", "--amount", "1", "--json")
    assert code == 4 and json.loads(out)["error"]["type"] == "unknown_wallet"


def test_audit_failure_exits_1_naming_wallet_and_field(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "credit", "--amount", "100")[0] == 0
    assert cli(capsys, "allocate", "--team", "team_support", "--amount", "20")[0] == 0
    client = sync_client(cli_env)
    client.hset("kt:{acme}:w:team:team_support", "balance", 1)
    client.close()
    code, out, _ = cli(capsys, "audit")
    assert code == 1 and "team:team_support: balance" in out
    code, out, _ = cli(capsys, "audit", "--json")
    assert code == 1 and not json.loads(out)["ok"]


def test_store_unreachable_exits_3_without_traceback(
    cli_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    for argv in (["credit", "--amount", "5"], ["balance"], ["audit"], ["ledger"]):
        code, _, err = cli(capsys, *argv)
        assert code == 3
        assert "Redis store unavailable at 127.0.0.1:1" in err and "Traceback" not in err


def test_missing_config_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # outside a checkout: no config/ to fall back on
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)
    code, _, err = cli(capsys, "balance")
    assert code == 2 and "no config file given" in err


def test_usage_errors_exit_2(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["allocate", "--amount", "5"])  # neither --team nor --user
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["allocate", "--team", "a", "--user", "b", "--amount", "5"])
    assert info.value.code == 2
    capsys.readouterr()


def test_empty_store_is_friendly(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "balance")
    assert code == 0 and "no wallets yet" in out
    code, out, _ = cli(capsys, "ledger")
    assert code == 0 and "empty" in out
    code, out, _ = cli(capsys, "audit")
    assert code == 0 and "audit ok: 0 ledger entries" in out


def test_readme_audit_command_works_from_a_checkout_without_keeptrusts_config(
    cli_env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """README's `keeptrusts-authz audit` (no KEEPTRUSTS_CONFIG) finds the checkout's config."""
    shipped = Path(__file__).resolve().parents[2] / "config" / "keeptrusts.example.yaml"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "keeptrusts.example.yaml").write_text(
        shipped.read_text("utf-8"), "utf-8"
    )
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.delenv("KEEPTRUSTS_API_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "audit")
    assert code == 0, err
    assert "audit ok" in out
