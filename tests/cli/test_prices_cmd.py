"""`keeptrusts-authz prices` and the unbounded_inputs config (strict, cross-checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.config import ConfigError, parse_config
from keeptrusts_authz.pricing import validate_pricing


def _write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "keeptrusts.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_prices_json_lists_the_shipped_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no default config file here: the shipped defaults
    assert main(["prices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["genai_prices_version"] == "0.2.3"
    assert data["currency"] == "USD" and data["data_date"] and data["limits_taken"]
    by_name = {m["model"]: m for m in data["models"]}
    gpt4o = by_name["gpt-4o"]
    assert (gpt4o["input_per_1m"], gpt4o["output_per_1m"]) == ("2.5", "10")
    assert gpt4o["service_tiers"]["priority"]["input_per_1m"] == "4.25"
    assert gpt4o["source"] == "genai-prices 0.2.3 'gpt-4o'"
    assert "gpt-4o-2024-08-06" in gpt4o["aliases"]
    assert by_name["gpt-4o-2024-05-13"]["input_per_1m"] == "5"
    long = by_name["claude-sonnet-4-5"]["long_context"]
    assert (long["above_input_tokens"], long["input_per_1m"]) == (200_000, "6")
    assert by_name["claude-3-7-sonnet"]["beta_max_output_tokens"] == {
        "output-128k-2025-02-19": 128_000
    }
    assert by_name["claude-haiku-4-5"]["cache_write_1h_per_1m"] == "2"


def test_prices_text_shows_config_overrides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        {
            "pricing": {
                "models": {
                    "gpt-4o": {"input_per_1m": "1", "output_per_1m": "2", "max_output_tokens": 9}
                }
            }
        },
    )
    assert main(["prices", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prices in USD per 1M tokens; shipped prices from genai-prices 0.2.3")
    line = next(x for x in out.splitlines() if x.startswith("gpt-4o "))
    assert "config override (pricing.models.gpt-4o)" in line
    assert line.split()[1:3] == ["1", "-"]


def test_prices_with_a_bad_config_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _write(tmp_path, {"pricing": {"unknown_model": "default"}})
    assert main(["prices", str(path)]) == 1
    assert "default_model" in capsys.readouterr().err


def test_unbounded_inputs_config_is_strict() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"consumer_groups": [{"name": "a", "api_key": "k", "unbounded_inputs": "allowance"}]}
        )
    assert info.value.errors == [
        "consumer_groups[0].unbounded_allowance_tokens: required when unbounded_inputs is "
        "'allowance' (here or under enforcement)"
    ]
    with pytest.raises(ConfigError) as info:
        parse_config({"consumer_groups": [{"name": "a", "api_key": "k", "unbounded_inputs": "x"}]})
    assert info.value.errors == [
        "consumer_groups[0].unbounded_inputs: Input should be 'refuse' or 'allowance'"
    ]
    with pytest.raises(ConfigError):
        parse_config({"enforcement": {"unbounded_inputs": "allowance"}})
    # The enforcement default gives every group its allowance.
    cfg = parse_config(
        {
            "enforcement": {"unbounded_inputs": "allowance", "unbounded_allowance_tokens": 10},
            "consumer_groups": [{"name": "a", "api_key": "k"}],
        }
    )
    assert cfg.unbounded_for(cfg.consumer_groups[0]) == ("allowance", 10)
    assert parse_config({}).enforcement.unbounded_inputs == "refuse"


def test_check_config_cross_checks_unbounded_inputs() -> None:
    cfg = parse_config(
        {
            "consumer_groups": [
                {"name": "a", "api_key": "k", "unbounded_allowance_tokens": 5},
            ],
            "pricing": {
                "models": {
                    "mine": {"input_per_1m": "1", "output_per_1m": "1", "max_output_tokens": 5}
                }
            },
        }
    )
    report = validate_pricing(cfg)
    assert report.errors == []
    assert report.warnings == [
        "consumer_groups[0].unbounded_allowance_tokens: unused, the group's unbounded_inputs "
        "policy is 'refuse'",
        "pricing.models.mine: no context_window and no enforcement.server_history_tokens: a "
        "chained Responses request (previous_response_id) on it is an unbounded input (refused "
        "unless the group's unbounded_inputs is 'allowance')",
    ]
