"""Review finding 17: `Path.touch(mode=0o600)` does not change the mode of a file that already
exists, so a key file or `.run/keeptrusts.run.yaml` (admin tokens, keys) left world-readable by an
earlier run stayed world-readable. Now every secret file is written through one helper that opens
it with O_CREAT|O_TRUNC, mode 0600, and chmods it explicitly."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from keeptrusts_authz import devrun
from keeptrusts_authz.config import parse_config
from keeptrusts_authz.devcerts import generate, write_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_secret_tightens_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old, longer content than the new one")
    path.chmod(0o644)
    write_secret(path, b"new")
    assert _mode(path) == 0o600
    assert path.read_bytes() == b"new"


def test_regenerated_keys_end_0600_even_if_they_were_world_readable(tmp_path: Path) -> None:
    pki = generate(tmp_path / "tls")
    for key in (pki.server.key_file, pki.client.key_file):
        key.chmod(0o644)
    again = generate(tmp_path / "tls")
    for key in (again.server.key_file, again.client.key_file):
        assert _mode(key) == 0o600, key


def test_make_run_config_copy_ends_0600_even_if_it_was_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / ".run"
    run_dir.mkdir()
    monkeypatch.setattr(devrun, "RUN_DIR", run_dir)
    derived = run_dir / "keeptrusts.run.yaml"
    derived.write_text("# an earlier run's copy\n")
    derived.chmod(0o644)
    source = tmp_path / "keeptrusts.yaml"
    source.write_text(yaml.safe_dump({"server": {"grpc_port": 9191}}))
    cfg = parse_config({"server": {"grpc_port": 9191}}, "t")
    secured, path = devrun._service_tls(cfg, source)
    assert path == derived
    assert secured.server.tls is not None
    assert _mode(derived) == 0o600
    assert "tls" in yaml.safe_load(derived.read_text())["server"]


def test_make_run_provider_credential_file_ends_0600_even_if_it_was_world_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / ".run"
    (run_dir / "secrets").mkdir(parents=True)
    monkeypatch.setattr(devrun, "RUN_DIR", run_dir)
    stale = run_dir / "secrets" / "openai"
    stale.write_text("sk-an-earlier-longer-key")
    stale.chmod(0o644)
    monkeypatch.setenv("KT_T_OPENAI", "sk-new")
    cfg = parse_config(
        {
            "providers": [
                {
                    "name": "openai",
                    "kind": "openai",
                    "url": "https://api.openai.com",
                    "credential_env": "KT_T_OPENAI",
                }
            ]
        },
        "t",
    )
    out = devrun._provider_credentials(cfg)
    assert out.providers[0].credential_file == str(stale.resolve())
    assert _mode(stale) == 0o600
    assert stale.read_text() == "sk-new"
