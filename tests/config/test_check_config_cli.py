"""`keeptrusts-authz check-config`, run in-process: exit codes, summary, errors, no secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keeptrusts_authz.cli.config_cmds import key_source, mask_url
from keeptrusts_authz.cli.main import main
from keeptrusts_authz.config.models import ConsumerGroup

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))
SEED = FIXTURES / "good" / "seed.yaml"
FULL = FIXTURES / "good" / "full.yaml"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "keeptrusts.example.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "KEEPTRUSTS_CONFIG", "KT_TEST_SUPPORT_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check-config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def secrets_in(path: Path) -> list[str]:
    """Every plaintext key or password the fixture holds."""
    text = path.read_text("utf-8")
    found = re.findall(r"^\s*-?\s*api_key:\s*(\S+)", text, flags=re.M)
    found += re.findall(r"redis://[^:/@]*:([^@]+)@", text)
    return found


def test_seed_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(SEED))
    assert code == 0, err
    assert f"{SEED}: OK" in out
    assert re.search(r"engineering\s+team_engineering\s+user,team\s+block\s+api_key", out)
    assert "organization: default (currency USD)" in out
    assert "models priced" in out
    assert "redis: standalone redis://127.0.0.1:6379/0" in out
    assert "kt_cg_engineering_prod" not in out + err


def test_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(EXAMPLE))
    assert code == 0, err
    assert "organization: acme (currency USD)" in out
    for secret in secrets_in(EXAMPLE):
        assert secret not in out + err


def test_full_summary_hides_every_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KT_TEST_SUPPORT_KEY", "kt_cg_support_from_env")
    code, out, err = run(capsys, str(FULL))
    assert code == 0, err
    assert re.search(r"support\s+team_support\s+team,org\s+warn\s+env:KT_TEST_SUPPORT_KEY", out)
    assert re.search(r"legal\s+team_legal\s+user,team\s+hold\s+sha256", out)
    assert re.search(r"platform\s+\(org wallet\)\s+org\s+block\s+api_key", out)
    assert "redis: sentinel redis://default:***@10.0.0.5:26379/0" in out
    assert "priced as gpt-4o" in out
    assert "alerts: webhook to hooks.example.com" in out
    everything = out + err
    for secret in [*secrets_in(FULL), "kt_cg_support_from_env", "xyzSECRETxyz"]:
        assert secret not in everything
    assert "0c1b5a1c0e1b" not in everything  # not even the key digests


def test_redis_url_from_env_is_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis.internal:6380/2")
    code, out, err = run(capsys, str(SEED))
    assert code == 0
    assert "redis://:***@redis.internal:6380/2" in out
    assert "hunter2" not in out + err


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(SEED), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["errors"] == []
    summary = data["summary"]
    assert summary["organization"] == {"id": "default", "currency": "USD"}
    assert summary["consumer_groups"][0] == {
        "name": "engineering",
        "team": "team_engineering",
        "cascade": ["user", "team"],
        "policy": "block",
        "key_source": "api_key",
        "user_header": "x-keeptrusts-user",
        "allowed_models": None,
    }
    assert summary["pricing"]["models"] >= 20
    assert summary["redis"]["mode"] == "standalone"
    assert "kt_cg_engineering_prod" not in out


def test_json_output_on_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(FIXTURES / "bad" / "unknown_nested_key.yaml"), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert data["errors"] == ["consumer_groups[1].wallet_teamid: unknown key"]
    assert "summary" not in data


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_exits_1_with_its_error(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = run(capsys, str(path))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    for expected in re.findall(r"^# expect: (.+)$", path.read_text("utf-8"), flags=re.M):
        assert any(line.startswith(f"{path}: {expected}") for line in lines), (expected, err)
    assert lines[-1].startswith(f"{path}: invalid (")
    for secret in secrets_in(path):
        assert secret not in err


def test_unreadable_file_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "/nonexistent/keeptrusts.yaml")
    assert code == 1 and out == ""
    assert err.splitlines()[0] == (
        "/nonexistent/keeptrusts.yaml: cannot read: No such file or directory"
    )


def test_config_from_option_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "--config", str(SEED))[0] == 0
    monkeypatch.setenv("KEEPTRUSTS_CONFIG", str(SEED))
    code, out, _ = run(capsys)
    assert code == 0 and f"{SEED}: OK" in out
    # FILE wins over $KEEPTRUSTS_CONFIG.
    assert run(capsys, str(FIXTURES / "bad" / "bad_policy.yaml"))[0] == 1


def test_no_config_given_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no config/ folder here
    code, _, err = run(capsys)
    assert code == 2
    assert "no config file given" in err


def test_unset_key_env_is_a_warning_unless_strict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("consumer_groups:\n- name: a\n  api_key_env: KT_TEST_UNSET_KEY_VAR\n")
    code, out, err = run(capsys, str(path))
    assert code == 0
    assert (
        f"{path}: warning: consumer_groups[0].api_key_env: environment variable "
        "KT_TEST_UNSET_KEY_VAR is not set" in err
    )
    assert "env:KT_TEST_UNSET_KEY_VAR" in out
    code, out, err = run(capsys, str(path), "--strict-env")
    assert code == 1 and out == ""
    assert f"{path}: consumer_groups[0].api_key_env: environment variable" in err


def test_help_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check-config", "--help"])
    assert info.value.code == 0
    assert "--strict-env" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:p%40ss@host/1", "rediss://user:***@host/1"),
        ("redis://host:6379/0?password=pw&db=1", "redis://host:6379/0?password=***&db=1"),
        ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_key_source_never_returns_the_key() -> None:
    assert key_source(ConsumerGroup(name="a", api_key="kt_secret")) == "api_key"
    assert key_source(ConsumerGroup(name="a", api_key_env="K")) == "env:K"
    assert key_source(ConsumerGroup(name="a", api_key_sha256="a" * 64)) == "sha256"


def test_config_found_the_way_readme_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No --config, no $KEEPTRUSTS_CONFIG: config/keeptrusts.yaml, then the shipped example."""
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    example = tmp_path / "config" / "keeptrusts.example.yaml"
    example.write_text(SEED.read_text("utf-8"), "utf-8")
    code, out, _ = run(capsys)
    assert code == 0 and "config/keeptrusts.example.yaml: OK" in out
    own = tmp_path / "config" / "keeptrusts.yaml"
    own.write_text("consumer_groups: []\nbogus: 1\n", "utf-8")
    code, out, err = run(capsys)
    # The operator's own file wins over the example, and its errors name it.
    assert code == 1 and "config/keeptrusts.yaml" in out + err and "bogus" in out + err


def test_missing_config_message_names_every_place_looked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys)
    assert code == 2
    for needle in (
        "--config",
        "KEEPTRUSTS_CONFIG",
        "config/keeptrusts.yaml",
        "keeptrusts.example.yaml",
    ):
        assert needle in err
