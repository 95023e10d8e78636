"""Helpers for the observability and report tests (real Redis via the `redis_url` fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from keeptrusts_authz.config import Config, parse_config
from keeptrusts_authz.store.observability import ObservabilityStore
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService

T = TypeVar("T")
USD = 1_000_000


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_config(url: str, org: str = "acme", **extra: Any) -> Config:
    doc: dict[str, Any] = {
        "organization": {"id": org, "currency": "USD"},
        "consumer_groups": [
            {"name": "engineering", "api_key": "kt_cg_eng", "wallet_team_id": "team_eng"},
            {"name": "support", "api_key": "kt_cg_sup", "wallet_team_id": "team_support"},
            {"name": "research", "api_key": "kt_cg_res"},  # no team: funded by the org
        ],
        "redis": {"url": url},
    }
    doc.update(extra)
    return parse_config(doc)


@asynccontextmanager
async def services(cfg: Config) -> AsyncIterator[tuple[WalletService, ObservabilityStore]]:
    store = RedisWalletStore.from_settings(cfg.redis, cfg.organization.id)
    obs = ObservabilityStore.from_settings(cfg.redis, cfg.organization.id)
    try:
        yield WalletService(store, cfg), obs
    finally:
        await store.close()
        await obs.close()


def rid() -> str:
    return "r_" + uuid.uuid4().hex[:24]


async def spend(
    svc: WalletService,
    amount: int,
    cost: int,
    *,
    wallet: str = "team:team_eng",
    team: str = "team_eng",
    group: str = "engineering",
    model: str = "gpt-4o",
    user: str = "alice",
    estimated: bool = False,
    tokens: tuple[int, int, int] = (100, 50, 10),
    policy: str = "block",
) -> str:
    """Reserve `amount` on `wallet` and settle it at `cost`; the reservation id."""
    r = rid()
    res = await svc.reserve(
        ReserveRequest(
            reservation_id=r,
            candidates=(wallet,),
            amount=amount,
            policy=policy,  # type: ignore[arg-type]
            overdraft_wallet=wallet if policy in ("warn", "showback") else None,
            ttl_ms=600_000,
            team=team,
            group=group,
            user=user,
            model=model,
        )
    )
    assert res.allowed, res
    await svc.settle(
        SettleRequest(
            r,
            cost,
            estimated=estimated,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cached_tokens=tokens[2],
            model=model,
        )
    )
    return r
