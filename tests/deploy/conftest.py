"""Render every kustomization under deploy/ once per session (kubectl kustomize when it is
installed, else tests/deploy/kustomize_lite.py) and hand the objects to the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import kustomize_lite

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("overlays/dev", "overlays/production")
# Every kustomization a user can apply, and those whose Envoy ConfigMap comes from keeptrusts.yaml.
KUSTOMIZATIONS = (*OVERLAYS, "examples/sidecar", "monitoring")
ENVOY_DIRS = (*OVERLAYS, "examples/sidecar")
K8S_VERSION = "1.31.0"  # pinned Kubernetes minor for kubernetes-validate's schemas

Obj = dict[str, Any]


def kubectl() -> str | None:
    """kubectl, unless absent or KEEPTRUSTS_TEST_NO_KUBECTL=1 forces the fallback renderer."""
    if os.environ.get("KEEPTRUSTS_TEST_NO_KUBECTL") == "1":
        return None
    return shutil.which("kubectl")


def render_kubectl(directory: Path) -> list[Obj]:
    exe = kubectl()
    assert exe is not None
    out = subprocess.run(
        [exe, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, f"kubectl kustomize {directory}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def render(directory: Path) -> list[Obj]:
    if kubectl():
        return render_kubectl(directory)
    return kustomize_lite.build(directory)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    return {name: render(DEPLOY / name) for name in KUSTOMIZATIONS}


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def configmap(objs: list[Obj], prefix: str) -> Obj:
    """The generated ConfigMap whose name is `prefix` plus kustomize's hash suffix."""
    hits = [
        o
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    assert len(hits) == 1, f"expected one ConfigMap {prefix}-<hash>, found {len(hits)}"
    return hits[0]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]
