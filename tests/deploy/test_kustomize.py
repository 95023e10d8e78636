"""Rendering: every kustomization builds, and the fallback renderer agrees with kubectl."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import kustomize_lite
from tests.deploy.conftest import DEPLOY, KUSTOMIZATIONS, kubectl, render_kubectl


def _by_id(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for o in objs:
        key = (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", ""))
        assert key not in out, f"duplicate {key}"
        out[key] = o
    return out


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_kustomization_renders(name: str, rendered: dict[str, Any]) -> None:
    objs = rendered[name]
    assert objs, f"{name} rendered nothing"
    _by_id(objs)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_fallback_renderer_matches_kubectl(name: str) -> None:
    if not kubectl():
        pytest.skip("kubectl not installed: nothing to compare the fallback renderer with")
    ours = _by_id(kustomize_lite.build(DEPLOY / name))
    theirs = _by_id(render_kubectl(DEPLOY / name))
    assert sorted(ours) == sorted(theirs)
    for key, obj in theirs.items():
        assert ours[key] == obj, f"{name}: {key} differs from kubectl kustomize"


def test_configmap_hash_is_kustomizes() -> None:
    # `configMapGenerator: [{name: x, literals: [a=b]}]` -> x-4h2mbtbbt6 with kustomize v5.5.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert kustomize_lite.configmap_hash(cm) == "4h2mbtbbt6"


def test_fallback_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [], "commonLabels": {"a": "b"}})
    )
    with pytest.raises(kustomize_lite.Unsupported):
        kustomize_lite.build(tmp_path)


def test_generated_configmaps_are_hash_named_and_referenced(rendered: dict[str, Any]) -> None:
    """Editing keeptrusts.yaml must roll the pods: the ConfigMap names carry a content hash and
    the Deployments mount exactly those names."""
    for name in ("overlays/dev", "overlays/production"):
        objs = rendered[name]
        cms = {o["metadata"]["name"] for o in objs if o["kind"] == "ConfigMap"}
        mounted = {
            v["configMap"]["name"]
            for o in objs
            if o["kind"] == "Deployment"
            for v in o["spec"]["template"]["spec"].get("volumes", [])
            if "configMap" in v
        }
        assert mounted <= cms, f"{name}: mounts {mounted - cms} that the overlay does not define"
        for prefix in ("keeptrusts-config", "keeptrusts-envoy"):
            assert any(m.startswith(prefix + "-") and len(m) == len(prefix) + 11 for m in mounted)
