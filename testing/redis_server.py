"""A real redis-server on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="kt-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--protected-mode",
                "no",
                "--maxclients",
                "4096",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def save(self) -> None:
        """SAVE: write dump.rdb now (the server starts from it again after `kill` + `start`)."""
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.save()
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9, keeping the data directory: `start()` again comes back empty, or from the
        last `save()` (a stale snapshot)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


__all__ = ["RedisServer", "free_port", "wait_port"]


def empty_keeping_epochs(url: str) -> None:
    """FLUSHALL, then put every organization's epoch marker back with its ledger high-water mark
    as the floor: for test suites that share one running service across tests and empty Redis
    between them. To the service this is a store that kept its continuity (nothing to detect);
    a plain FLUSHALL under a running service is a lost store and is refused (store_regressed)."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        markers: dict[str, dict[str, str]] = {}
        for key in client.scan_iter("kt:*:epoch"):
            marker = client.hgetall(key)
            ledger = key[: -len("epoch")] + "ledger"
            try:
                last = str(client.xinfo_stream(ledger)["last-generated-id"])
            except redis.ResponseError:
                last = marker.get("hwm_floor", "0-0")
            markers[key] = {**marker, "hwm_floor": last}
        client.flushall()
        for key, marker in markers.items():
            client.hset(key, mapping=marker)  # type: ignore[arg-type]
    finally:
        client.close()
