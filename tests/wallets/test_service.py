"""WalletService validation (bad input leaves balances AND ledger untouched), reads and audit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.errors import (
    Conflict,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidInput,
    KeeptrustsError,
    StoreUnavailable,
    UnknownWallet,
)
from keeptrusts_authz.store.redis_store import RedisWalletStore
from keeptrusts_authz.wallets.models import SettleRequest, Wallet, wallet_status
from keeptrusts_authz.wallets.service import WalletService
from tests.wallets.support import (
    ORG,
    USD,
    Backend,
    funded,
    reserve_req,
    run,
    sync_client,
    wallet_service,
)

Call = Callable[[WalletService], Awaitable[Any]]

BAD_CALLS: list[tuple[str, Call, type[KeeptrustsError]]] = [
    ("zero", lambda s: s.allocate("team:team_eng", 0, "USD", "", "t"), InvalidInput),
    ("negative", lambda s: s.credit(-1, "USD", "", "t"), InvalidInput),
    ("bool", lambda s: s.credit(True, "USD", "", "t"), InvalidInput),  # type: ignore[arg-type]
    ("too large", lambda s: s.credit(10**16, "USD", "", "t"), InvalidInput),
    ("wrong currency", lambda s: s.credit(1, "EUR", "", "t"), CurrencyMismatch),
    ("alloc currency", lambda s: s.allocate("team:team_eng", 1, "GBP", "", "t"), CurrencyMismatch),
    ("alloc to org", lambda s: s.allocate("org", 1, "USD", "", "t"), InvalidInput),
    ("bad wallet id", lambda s: s.allocate("team:a b", 1, "USD", "", "t"), InvalidInput),
    ("bad scope", lambda s: s.allocate("dept:x", 1, "USD", "", "t"), InvalidInput),
    ("unknown alloc team", lambda s: s.allocate("team:ghost", 1, "USD", "", "t"), UnknownWallet),
    (
        "alloc > org",
        lambda s: s.allocate("team:team_eng", 10**12, "USD", "", "t"),
        InsufficientFunds,
    ),
    ("reclaim unknown", lambda s: s.reclaim("team:ghost", 1, "USD", "", "t"), UnknownWallet),
    (
        "reclaim configured, never funded",
        lambda s: s.reclaim("team:team_ops", 1, "USD", "", "t"),
        UnknownWallet,
    ),
    (
        "reclaim too much",
        lambda s: s.reclaim("team:team_eng", 101 * USD, "USD", "", "t"),
        InsufficientFunds,
    ),
    ("reclaim org", lambda s: s.reclaim("org", 1, "USD", "", "t"), InvalidInput),
    (
        "transfer to itself",
        lambda s: s.transfer("team:team_eng", "team:team_eng", 1, "USD", "", "t"),
        InvalidInput,
    ),
    (
        "transfer unknown source",
        lambda s: s.transfer("team:ghost", "team:team_eng", 1, "USD", "", "t"),
        UnknownWallet,
    ),
    (
        "transfer unknown destination",
        lambda s: s.transfer("team:team_eng", "team:ghost", 1, "USD", "", "t"),
        UnknownWallet,
    ),
    (
        "transfer too much",
        lambda s: s.transfer("team:team_eng", "team:team_support", 101 * USD, "USD", "", "t"),
        InsufficientFunds,
    ),
    ("empty actor", lambda s: s.credit(1, "USD", "", " "), InvalidInput),
    ("long description", lambda s: s.credit(1, "USD", "x" * 501, "t"), InvalidInput),
    ("bad idem key", lambda s: s.credit(1, "USD", "", "t", "has space"), InvalidInput),
    (
        "reserve no candidates",
        lambda s: s.reserve(reserve_req(1, ())),
        InvalidInput,
    ),
    ("reserve bad id", lambda s: s.reserve(reserve_req(1, reservation_id="r 1")), InvalidInput),
    ("reserve negative", lambda s: s.reserve(reserve_req(-1)), InvalidInput),
    ("reserve bad ttl", lambda s: s.reserve(reserve_req(1, ttl_ms=0)), InvalidInput),
    (
        "reserve bad policy",
        lambda s: s.reserve(reserve_req(1, policy="maybe")),  # type: ignore[arg-type]
        InvalidInput,
    ),
    ("settle negative", lambda s: s.settle(SettleRequest("r_1", -1, False)), InvalidInput),
    ("settle bad id", lambda s: s.settle(SettleRequest("", 1, False)), InvalidInput),
    ("ledger count", lambda s: s.ledger(0), InvalidInput),
    ("unknown wallet read", lambda s: s.wallet("team:ghost"), UnknownWallet),
]


@pytest.mark.parametrize(("name", "call", "error"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_leaves_balances_and_ledger_untouched(
    backend: Backend, name: str, call: Call, error: type[KeeptrustsError]
) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=100 * USD, team_support=5 * USD)
            before = backend.state()
            with pytest.raises(error) as info:
                await call(svc)
            after = backend.state()
            assert after == before, name
            assert after[1] == before[1]  # ledger length unchanged
            exc = info.value
            assert exc.message and "kt:" not in exc.message and "kt_cg" not in exc.message
            assert (
                exc.http_status
                == {
                    InvalidInput: 400,
                    CurrencyMismatch: 400,
                    UnknownWallet: 404,
                    InsufficientFunds: 409,
                    Conflict: 409,
                }[error]
            )

    run(go())


def test_insufficient_funds_names_what_is_available(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=100 * USD)
            with pytest.raises(InsufficientFunds) as info:
                await svc.reclaim("team:team_eng", 150 * USD, "USD", "", "t")
            assert info.value.details["available"] == "100.00"
            assert info.value.details["wallet"] == "team:team_eng"
            assert "100.00 USD available" in info.value.message

    run(go())


def test_currency_is_case_insensitive_but_never_converted(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            res = await svc.credit(1 * USD, "usd", "", "t")
            assert res.balances["org"] == 1 * USD

    run(go())


def test_status_healthy_low_depleted() -> None:
    ratio = Decimal("0.2")
    assert wallet_status(0, 100, ratio) == "depleted"
    assert wallet_status(-5, 100, ratio) == "depleted"
    assert wallet_status(19, 100, ratio) == "low"
    assert wallet_status(20, 100, ratio) == "healthy"
    assert wallet_status(1, 0, ratio) == "healthy"
    w = Wallet.build(
        "team:x",
        balance=1,
        reserved=0,
        allocated_total=3,
        spent_total=0,
        low_balance_ratio=Decimal("0.5"),
    )
    assert (w.scope, w.owner, w.status) == ("team", "x", "low")


def test_wallets_listing_and_status_from_config_ratio(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service(low_balance_ratio="0.5") as svc:
            await funded(svc, team_eng=100 * USD, team_support=10 * USD)
            await svc.allocate("user:bob", 1 * USD, "USD", "", "t", team="team_eng")
            await svc.reserve(reserve_req(60 * USD))
            wallets = await svc.wallets()
            assert [w.id for w in wallets] == [
                "org",
                "team:team_eng",
                "team:team_support",
                "user:bob",
            ]
            by_id = {w.id: w for w in wallets}
            assert by_id["team:team_eng"].status == "low"
            assert by_id["team:team_support"].status == "healthy"
            assert by_id["org"].owner == ORG

    run(go())


def test_ledger_paging_and_wallet_filter(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=100 * USD, team_support=10 * USD)
            await svc.transfer("team:team_eng", "team:team_support", 1 * USD, "USD", "", "t")
            latest = await svc.ledger(2)
            assert [e.op for e in latest] == ["transfer", "allocate"]
            older = await svc.ledger(10, before=latest[-1].id)
            assert [e.op for e in older] == ["allocate", "credit"]
            sup = await svc.ledger(10, wallet="team:team_support")
            assert [e.op for e in sup] == ["transfer", "allocate"]
            assert await svc.ledger(10, wallet="user:nobody") == []

    run(go())


def test_audit_names_wallet_and_field_on_tampering(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=100 * USD)
            await svc.reserve(reserve_req(1 * USD))
            assert (await svc.audit()).ok
            client = sync_client(redis_url)
            client.hincrby(f"kt:{{{ORG}}}:w:team:team_eng", "spent_total", 7)
            client.zadd(f"kt:{{{ORG}}}:r:deadlines", {"r_phantom": 1})
            client.close()
            report = await svc.audit()
            assert not report.ok
            text = "\n".join(report.mismatches)
            assert "team:team_eng: spent_total" in text
            assert "r_phantom" in text

    run(go())


def test_unreachable_store_raises_store_unavailable() -> None:
    cfg = parse_config({"organization": {"id": ORG}, "redis": {"url": "redis://127.0.0.1:1/0"}})

    async def go() -> None:
        store = RedisWalletStore.from_settings(cfg.redis, ORG)
        svc = WalletService(store, cfg)
        try:
            with pytest.raises(StoreUnavailable) as info:
                await svc.credit(1, "USD", "", "t")
            assert info.value.http_status == 503 and "127.0.0.1:1" in info.value.message
            with pytest.raises(StoreUnavailable):
                await svc.reserve(reserve_req(1))
        finally:
            await store.close()

    run(go())


def test_store_password_never_in_messages() -> None:
    cfg = parse_config(
        {"organization": {"id": ORG}, "redis": {"url": "redis://user:s3cret@127.0.0.1:1/0"}}
    )

    async def go() -> None:
        store = RedisWalletStore.from_settings(cfg.redis, ORG)
        try:
            with pytest.raises(StoreUnavailable) as info:
                await store.ping()
            assert "s3cret" not in str(info.value)
        finally:
            await store.close()

    run(go())
