"""A real PostgreSQL server (initdb + pg_ctl) in a temp dir on a free loopback port, for tests and
benchmarks. initdb refuses to run as root, so as root the server runs as the `postgres` system user
(created when missing)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid

from testing.redis_server import free_port


def _pg_bin(name: str) -> str:
    """The newest Debian cluster binary, else whatever is on PATH."""
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (apt-get install postgresql)")
    return found


def _run_as() -> str | None:
    """The user to run the server as: None when not root, else `postgres` (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "postgres"],
            check=True,
        )
    return "postgres"


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="kt-pg-")
        self._data = os.path.join(self._dir, "data")
        self._user = _run_as()
        self.superuser = self._user or pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql://{self.superuser}@127.0.0.1:{self.port}/postgres"

    def _cmd(self, argv: list[str]) -> list[str]:
        if self._user is None:
            return argv
        return ["runuser", "-u", self._user, "--", *argv]

    def start(self) -> PostgresServer:
        if self._user is not None:
            os.chmod(self._dir, 0o755)
            shutil.chown(self._dir, user=self._user)
        subprocess.run(
            self._cmd(
                [_pg_bin("initdb"), "-D", self._data, "-A", "trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories="
            f"{self._dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            self._cmd(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    self._data,
                    "-o",
                    opts,
                    "-l",
                    os.path.join(self._dir, "log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return self

    def create_database(self) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = "kt_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self) -> None:
        if os.path.isdir(self._data):
            subprocess.run(
                self._cmd([_pg_bin("pg_ctl"), "-D", self._data, "-m", "immediate", "stop"]),
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["PostgresServer"]
