"""deploy/README.md walks a user from zero to a funded team with the names the manifests use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, ENVOY_DIRS, OVERLAYS, all_containers, pod_spec, workloads

README = (DEPLOY / "README.md").read_text(encoding="utf-8")


def test_readme_covers_the_walkthrough() -> None:
    for needle in (
        "docker build -f deploy/Dockerfile",
        "kubectl apply -k deploy/overlays/dev",
        "rollout status",
        "port-forward svc/keeptrusts-gateway 10000:10000",
        "port-forward deploy/keeptrusts-authz 9192 9464",
        "cert-manager",
        "keeptrusts-sidecar-tls",
        "port-forward svc/keeptrusts-redis 6379:6379",
        "KEEPTRUSTS_API_URL",
        "KEEPTRUSTS_API_TOKEN",
        "REDIS_URL",
        "make credit AMOUNT=",
        "make allocate TEAM=team_engineering AMOUNT=1200",
        "python -m deploy.render",
        "on_store_error: allow",
        "503",
        "## 6. Upgrade",
        "## 7. Scale",
        "## 8. When things fail",
    ):
        assert needle in README, f"deploy/README.md does not mention {needle!r}"


def test_readme_creates_every_secret_the_manifests_reference(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    referenced: set[str] = set()
    for name in (*OVERLAYS, "examples/sidecar"):
        for w in workloads(rendered[name]):
            for c in all_containers(pod_spec(w)):
                for e in c.get("envFrom", []):
                    if "secretRef" in e:
                        referenced.add(e["secretRef"]["name"])
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        referenced.add(ref["name"])
    assert referenced
    for secret in referenced:
        assert re.search(rf"create secret generic {re.escape(secret)}\b", README), secret


def test_readme_secret_keys_are_the_variables_the_configs_name() -> None:
    for directory in ENVOY_DIRS:
        cfg = yaml.safe_load((DEPLOY / directory / "keeptrusts.yaml").read_text())
        names = {g["api_key_env"] for g in cfg.get("consumer_groups", []) if "api_key_env" in g}
        names |= {
            Path(p["credential_file"]).name for p in cfg["providers"] if p.get("credential_file")
        }
        for var in names:
            assert f"--from-literal={var}=" in README, f"{directory}: README never sets {var}"
