"""The service archives in the background when `ledger.postgres_url` is set (built in the
composition root), says which mode it runs in at start-up, and runs Redis-only without it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.ledger.archive_store import ArchiveStore
from keeptrusts_authz.ledger.schema import migrate
from keeptrusts_authz.server import build_app, start_server
from tests.wallets.support import ORG, USD, run


def _cfg(redis_url: str, pg_url: str | None) -> object:
    ledger = {"archive_interval_seconds": 0.05, "redis_tail_entries": 1}
    if pg_url:
        ledger["postgres_url"] = pg_url
    return parse_config(
        {
            "organization": {"id": ORG, "currency": "USD"},
            "redis": {"url": redis_url, "socket_timeout_seconds": 15},
            "ledger": ledger,
        }
    )


def test_service_archives_in_background(
    redis_url: str, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run(migrate(postgres_url))
    caplog.set_level(logging.INFO, logger="keeptrusts_authz.server")

    async def go() -> None:
        app = build_app(_cfg(redis_url, postgres_url), registry=CollectorRegistry())  # type: ignore[arg-type]
        running = await start_server(app, host="127.0.0.1", port=0)
        try:
            for _ in range(3):
                await app.wallets.credit(1 * USD, "USD", "", "t")
            archive = ArchiveStore(postgres_url)
            for _ in range(200):
                if await archive.count(ORG) == 3:
                    break
                await asyncio.sleep(0.05)
            assert await archive.count(ORG) == 3
            assert await app.redis.main.xlen(f"kt:{{{ORG}}}:ledger") == 1
        finally:
            await running.stop(grace=0)

    run(go())
    assert "ledger: archiving to PostgreSQL" in caplog.text


def test_service_without_postgres_says_redis_only(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keeptrusts_authz.server")

    async def go() -> None:
        app = build_app(_cfg(redis_url, None), registry=CollectorRegistry())  # type: ignore[arg-type]
        assert app.archiver is None
        running = await start_server(app, host="127.0.0.1", port=0)
        try:
            await app.wallets.credit(1 * USD, "USD", "", "t")
            assert await app.redis.main.xlen(f"kt:{{{ORG}}}:ledger") == 1
        finally:
            await running.stop(grace=0)

    run(go())
    assert "ledger: Redis only" in caplog.text
