"""Review finding 13: the Unix socket's chmod was wrapped in suppress(FileNotFoundError) and ran
before the server started: a socket that was not there (or kept another mode) went unnoticed,
world-connectable under a permissive umask. Now the mode is set after start and checked; a missing
socket, a non-socket or a mode other than 0660 fails start-up."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.server import bind_grpc, secure_socket


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_socket_is_0660_after_start_even_under_a_permissive_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    sock = tmp_path / "authz.sock"
    settings = parse_config({"server": {"uds_path": str(sock)}}, "t").server

    async def run() -> int:
        server = grpc.aio.server()
        bind_grpc(server, settings)
        await server.start()
        try:
            secure_socket(sock)
            return _mode(sock)
        finally:
            await server.stop(0)

    assert asyncio.run(run()) == 0o660


def test_missing_socket_fails_start_up_loudly(tmp_path: Path) -> None:
    sock = tmp_path / "authz.sock"
    settings = parse_config({"server": {"uds_path": str(sock)}}, "t").server

    async def run() -> None:
        server = grpc.aio.server()
        bind_grpc(server, settings)
        await server.start()
        try:
            sock.unlink()  # whatever removed it: the service must not carry on unreachable
            secure_socket(sock)
        finally:
            await server.stop(0)

    with pytest.raises(RuntimeError, match="socket is missing"):
        asyncio.run(run())


def test_a_regular_file_in_the_socket_place_fails_start_up(tmp_path: Path) -> None:
    path = tmp_path / "authz.sock"
    path.write_text("not a socket")
    with pytest.raises(RuntimeError, match="not a socket"):
        secure_socket(path)
