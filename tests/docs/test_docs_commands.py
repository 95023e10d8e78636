"""deploy/README.md and docs/*.md as tests (issue 15 item 1), README.md's convention
(tests/docs/test_readme_commands.py): every ```sh block runs verbatim here, in order in one bash
session with `set -euo pipefail` from the repository root, unless a marker line right above its
fence, `<!-- readme-test: skip (<reason>) -->`, says why it cannot (a Kubernetes cluster, Docker,
a port-forward). A skipped block is still checked: `bash -n` (it parses), and every
`kubectl apply -k <dir>` in it builds offline with `kubectl kustomize <dir>` when kubectl is
installed. So a command that is wrong fails the build.

The runnable blocks of deploy/README.md render the overlays (`python -m deploy.render`) and
`make k8s-validate`; the render must leave the committed files as they are (the overlays are
committed rendered), which this test checks and restores.

The docs are self-contained: every relative link and every backquoted repository path they
name exists in the repository, and they name no Markdown file the repository does not ship.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docs.test_readme_commands import shell_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "deploy/README.md", *sorted((ROOT / "docs").glob("*.md"))]
ALL_DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS]
RENDERED = sorted(ROOT.glob("deploy/**/envoy.yaml"))
TIMEOUT = 600


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def _runnable(doc: Path) -> list[tuple[int, str]]:
    return [(line, body) for line, body, why in shell_blocks(doc.read_text("utf-8")) if why is None]


# Docs with diagrams and JSON only (docs/*.md today) have nothing to run; a doc that gains a sh
# block is collected here from then on.
RUNNABLE_DOCS = [doc for doc in DOCS if _runnable(doc)]


def test_deploy_readme_has_runnable_blocks() -> None:
    assert ROOT / "deploy/README.md" in RUNNABLE_DOCS


@pytest.mark.parametrize("doc", RUNNABLE_DOCS, ids=_ids(RUNNABLE_DOCS))
def test_runnable_blocks_run_verbatim(doc: Path) -> None:
    runnable = _runnable(doc)
    before = {p: p.read_bytes() for p in RENDERED}
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '--- {doc.name}:{line}' >&2\n{body}" for line, body in runnable
    )
    try:
        res = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        changed = [p for p, data in before.items() if p.read_bytes() != data]
        for p in changed:
            p.write_bytes(before[p])
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    assert not changed, f"rendering changed committed files: {changed}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_skipped_blocks_say_why_and_still_parse(doc: Path) -> None:
    for line, body, why in shell_blocks(doc.read_text("utf-8")):
        if why is None:
            continue
        assert len(why.strip()) >= 10, (doc.name, line, why)
        res = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
        assert res.returncode == 0, (doc.name, line, res.stderr)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_every_kustomization_the_docs_apply_builds_offline() -> None:
    dirs: set[str] = set()
    for doc in DOCS:
        for _, body, _ in shell_blocks(doc.read_text("utf-8")):
            dirs |= set(re.findall(r"kubectl apply -k (\S+)", body))
    assert dirs, "deploy/README.md applies its overlays with kubectl apply -k"
    for d in sorted(dirs):
        assert (ROOT / d / "kustomization.yaml").exists(), d
        res = subprocess.run(
            ["kubectl", "kustomize", d], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, (d, res.stderr)


_EXT = r"(?:py|md|json|yaml|yml|lua|sql|toml|proto|txt|conf|pb|sh|html|csv)"
_PATH = re.compile(r"`([A-Za-z0-9_./-]+\." + _EXT + r")`")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_MARKDOWN_NAME = re.compile(r"\b([A-Za-z0-9_-]+\.md)\b")


def _exists(doc: Path, ref: str) -> bool:
    bases = [ROOT, doc.parent, ROOT / "keeptrusts_authz", *ROOT.glob("deploy/overlays/*")]
    return any((base / ref).exists() for base in bases)


@pytest.mark.parametrize("doc", ALL_DOCS, ids=_ids(ALL_DOCS))
def test_docs_name_only_files_the_repository_ships(doc: Path) -> None:
    text = doc.read_text("utf-8")
    missing: list[str] = []
    for m in _LINK.finditer(text):
        ref = m.group(1)
        if not ref.startswith(("http:", "https:", "mailto:")) and not (doc.parent / ref).exists():
            missing.append(f"link {ref}")
    for m in _PATH.finditer(text):
        ref = m.group(1)
        if ref.startswith((".run/", ".venv/", "/")) or ("/" not in ref and ".md" not in ref):
            continue  # made at run time, absolute, or a bare file name of the reader's own
        if not _exists(doc, ref):
            missing.append(f"path {ref}")
    shipped = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    for m in _MARKDOWN_NAME.finditer(text):
        if m.group(1) not in shipped:
            missing.append(f"markdown file {m.group(1)}")
    assert not missing, (doc.name, "names files the repository does not ship", missing)
