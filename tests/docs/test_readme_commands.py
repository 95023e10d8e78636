"""README as a test: every ```sh block of README.md runs verbatim against a `make run` stack.

The blocks run in order in one bash session (an `export` in one block holds in the next, as in a
reader's shell), with `set -euo pipefail`, from the repository root. A block may opt out only with
a marker line right above its fence, `<!-- readme-test: skip (<reason>) -->` (the set-up block:
`make run` is what this test starts, `make test` would recurse). The stack is `make run` itself, on
the ports README names, with `REDIS_URL` pointing at this session's own redis-server (README says
the CLI and `make run` honour it), so nothing touches a Redis this test did not start.

A command "works" when the block exits 0 and no JSON answer it printed is an error object: `curl
-s` exits 0 on a 4xx, so an `{"error": ...}` body (the product's one error shape) or a gRPC
status body (`{"code": ..., "message": ...}`) fails the test too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<why>[^)]+)\)\s*-->")
PORTS = (10000, 9191, 9464, 9901)


def shell_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, body, skip reason or None) of every ```sh block."""
    blocks: list[tuple[int, str, str | None]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() in ("```sh", "```bash", "```shell"):
            prev = lines[i - 1] if i else ""
            skip = SKIP.search(prev)
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            blocks.append((start + 1, "\n".join(lines[start:j]), skip["why"] if skip else None))
            i = j
        i += 1
    return blocks


def error_answers(output: str) -> list[str]:
    """Every JSON object in `output` that is an error answer."""
    found: list[str] = []
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", output):
        try:
            obj, _ = decoder.raw_decode(output, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict) and (
            "error" in obj or ({"code", "message"} <= obj.keys() and obj.get("code") != 0)
        ):
            found.append(json.dumps(obj)[:300])
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_readme_blocks_are_found_and_only_setup_is_skipped() -> None:
    blocks = shell_blocks(README.read_text("utf-8"))
    assert len(blocks) >= 3
    skipped = [(line, why) for line, _, why in blocks if why]
    assert all("make run" in body for _, body, why in blocks if why), skipped
    assert len(skipped) <= 1, skipped


def test_error_answers_detects_both_error_shapes() -> None:
    assert error_answers('ok {"error": {"type": "x", "message": "m"}} done')
    assert error_answers('{"code":3,"details":[],"message":"Could not find field"}')
    assert not error_answers('{"team_id": "team_support", "balance": "800.000000"}')


@pytest.fixture
def make_run_stack(redis_url: str) -> Iterator[dict[str, str]]:
    busy = [p for p in PORTS if _listening(p)]
    if busy:
        msg = f"README's ports {busy} are taken on this machine (is `make run` up?)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEPTRUSTS_")}
    env["REDIS_URL"] = redis_url
    log = (ROOT / ".run").joinpath("readme-test-make-run.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not all(_listening(p) for p in (10000, 9191)):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make run did not come up: {log.read_text('utf-8')[-3000:]}")
            time.sleep(0.2)
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.e2e
@pytest.mark.slow
def test_every_readme_command_works_verbatim(make_run_stack: dict[str, str]) -> None:
    blocks = shell_blocks(README.read_text("utf-8"))
    script = ["set -euo pipefail"]
    for line, body, why in blocks:
        if why:
            continue
        script.append(f"echo '### README.md line {line}' >&2")
        script.append(body)
    run = subprocess.run(
        ["bash", "-x", "-c", "\n".join(script)], cwd=ROOT, env=make_run_stack,
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    trace = run.stderr[-4000:]
    assert run.returncode == 0, f"a README command failed (exit {run.returncode}):\n{trace}"
    assert not error_answers(run.stdout), (error_answers(run.stdout), trace)
    assert "audit ok" in run.stdout, run.stdout[-3000:]
