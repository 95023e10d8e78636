"""The container image: Dockerfile structure (no Docker engine here) and the real part of the build
that can run here, the wheel: it builds, installs into a clean venv and its CLI starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|make|build-essential|clang|git|curl|wget|apt-get|apk|pip\s+wheel|"
    r"python3?-dev|libffi-dev|rustc|cargo)\b"
)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages(text: str) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for ins, rest in _instructions(text):
        if ins == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif ins == "FROM":
            stages.append([(ins, rest)])
        else:
            stages[-1].append((ins, rest))
    return args, stages


def _base(stage: list[tuple[str, str]], args: dict[str, str]) -> str:
    image = stage[0][1].split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python() -> None:
    args, stages = _stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage: build the wheel in one stage, run in another"
    for stage in stages:
        base = _base(stage, args)
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), (
            f"base image {base!r} is not a version-pinned python:3.11 slim"
        )
    build_runs = " ".join(r for i, r in stages[0] if i == "RUN")
    assert "wheel" in build_runs, "the first stage builds the wheel"


def test_final_stage_has_no_build_tools_and_runs_unprivileged() -> None:
    _args, stages = _stages(DOCKERFILE.read_text())
    final = stages[-1]
    for ins, rest in final:
        if ins == "RUN":
            assert not BUILD_TOOLS.search(rest), f"build tooling in the final stage: {rest}"
        if ins in ("COPY", "ADD") and "--from=" not in rest:
            pytest.fail(f"the final stage copies from the build context: {rest}")
    users = [rest for ins, rest in final if ins == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    env = " ".join(rest for ins, rest in final if ins == "ENV")
    assert "KEEPTRUSTS_CONFIG=/etc/keeptrusts/keeptrusts.yaml" in env
    entry = [rest for ins, rest in final if ins == "ENTRYPOINT"]
    cmd = [rest for ins, rest in final if ins == "CMD"]
    assert entry and entry[-1] == '["keeptrusts-authz"]'
    assert cmd and cmd[-1] == '["serve"]'
    exposed = " ".join(rest for ins, rest in final if ins == "EXPOSE").split()
    assert {"9191", "9464"} <= set(exposed)


def test_image_user_matches_the_pod_security_context() -> None:
    import yaml

    _args, stages = _stages(DOCKERFILE.read_text())
    uid = int([rest for ins, rest in stages[-1] if ins == "USER"][-1].split(":")[0])
    docs = list(yaml.safe_load_all((DEPLOY / "base/authz.yaml").read_text()))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include what the build needs"
    assert {"!pyproject.toml", "!keeptrusts_authz/"} <= set(lines)


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv_and_the_cli_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("keeptrusts_authz-*.whl")

    # The wheel carries the package data the service loads at run time.
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "keeptrusts_authz"
    for data in [*package.rglob("*.lua"), *package.rglob("*.yaml"), *package.rglob("*.pb")]:
        rel = data.relative_to(ROOT).as_posix()
        if "__pycache__" not in rel:
            assert rel in names, f"{rel} is missing from the wheel"
    assert "keeptrusts_authz/cli/main.py" in names

    # A clean venv (no access to the project's venv or source tree). No network: the
    # dependencies are lent from this venv's site-packages by a path entry appended after the
    # new venv's own site-packages, so the package itself can only come from the wheel.
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(target)
    py = target / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    Path(site, "zz_lent_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    cli = target / "bin" / "keeptrusts-authz"
    run = subprocess.run(
        [str(cli), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for command in ("serve", "check-config", "render-envoy"):
        assert command in run.stdout
    where = subprocess.run(
        [str(py), "-c", "import keeptrusts_authz; print(keeptrusts_authz.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).is_relative_to(target), f"imported from {where}, not the wheel"
