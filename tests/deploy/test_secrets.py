"""No secret material in the repository's manifests and configs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY, ENVOY_DIRS, KUSTOMIZATIONS, ROOT

SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", ".mypy_cache", ".ruff_cache"}


def _yaml_files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*"):
        if set(path.relative_to(ROOT).parts) & SKIP_DIRS:
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            out.append(path)
    return out


def _docs(path: Path) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError:
        return []  # not YAML we could hold secrets in (e.g. a template)


def test_no_secret_with_literal_data_anywhere_in_the_repo() -> None:
    files = _yaml_files()
    assert any(p.is_relative_to(DEPLOY) for p in files)
    for path in files:
        for doc in _docs(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data") and not doc.get("stringData"), (
                    f"{path.relative_to(ROOT)}: Secret {doc.get('metadata', {}).get('name')} "
                    "with literal data"
                )


def test_no_secret_in_rendered_output(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in KUSTOMIZATIONS:
        secrets = [o for o in rendered[name] if o["kind"] == "Secret"]
        assert not secrets, f"{name} renders Secrets; they are created out of band"


def test_no_secret_generator_in_kustomizations() -> None:
    for path in DEPLOY.rglob("kustomization.yaml"):
        k = yaml.safe_load(path.read_text())
        assert "secretGenerator" not in k, f"{path.relative_to(ROOT)}: secretGenerator"


def test_configs_hold_no_key_or_token() -> None:
    for directory in ENVOY_DIRS:
        text = (DEPLOY / directory / "keeptrusts.yaml").read_text()
        cfg = yaml.safe_load(text)
        for group in cfg.get("consumer_groups", []):
            assert "api_key" not in group, f"{directory}: literal api_key"
        assert not re.search(r"\b(kt_cg_|sk-|sk-ant-)[A-Za-z0-9_-]{6,}", text), directory
        assert "@" not in cfg.get("redis", {}).get("url", ""), "credentials in redis.url"
