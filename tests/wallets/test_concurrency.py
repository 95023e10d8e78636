"""Hundreds of concurrent reserves racing for the last dollars of one wallet: never overspent."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor

from keeptrusts_authz.wallets.models import ReserveResult, SettleRequest
from tests.wallets.support import USD, Backend, funded, reserve_req, run, wallet_service

FUNDS = 1000 * USD


def _check(results: list[tuple[int, ReserveResult]], balance: int, reserved: int) -> None:
    won = sum(amount for amount, r in results if r.outcome == "reserved")
    lost = [amount for amount, r in results if r.outcome == "blocked"]
    assert len(results) >= 500
    assert won <= FUNDS  # never overspent, to the micro
    assert reserved == won and balance == FUNDS - won
    assert lost, "the wallet was meant to fund only part of the requests"
    # the balance only went down during the race, so every refusal was for more than what is left
    assert all(amount > balance for amount in lost)


def test_600_concurrent_reserves_from_asyncio_tasks(backend: Backend) -> None:
    rng = random.Random(7)
    amounts = [rng.randint(1, 4 * USD) for _ in range(600)]  # ~1200 USD asked of 1000

    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=FUNDS)
            start = asyncio.Event()

            async def one(amount: int) -> tuple[int, ReserveResult]:
                await start.wait()
                return amount, await svc.reserve(reserve_req(amount))

            tasks = [asyncio.create_task(one(a)) for a in amounts]
            await asyncio.sleep(0)
            start.set()
            results = await asyncio.gather(*tasks)
            eng = await svc.wallet("team:team_eng")
            _check(results, eng.balance, eng.reserved)
            report = await svc.audit()
            assert report.ok, report.mismatches
            assert report.open_reservations == sum(1 for _, r in results if r.allowed)

    run(go())


def test_reserves_from_a_thread_pool_with_several_clients(redis_url: str) -> None:
    rng = random.Random(11)
    per_thread = [
        [rng.randint(1, 4 * USD) for _ in range(160)] for _ in range(4)
    ]  # ~1280 USD asked

    async def seed() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=FUNDS)

    run(seed())

    def worker(amounts: list[int]) -> list[tuple[int, ReserveResult]]:
        async def go() -> list[tuple[int, ReserveResult]]:
            async with wallet_service(redis_url) as svc:  # its own client and connection pool
                results = await asyncio.gather(*(svc.reserve(reserve_req(a)) for a in amounts))
                return list(zip(amounts, results, strict=True))

        return asyncio.run(go())

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [r for chunk in pool.map(worker, per_thread) for r in chunk]

    async def verify() -> None:
        async with wallet_service(redis_url) as svc:
            eng = await svc.wallet("team:team_eng")
            _check(results, eng.balance, eng.reserved)
            report = await svc.audit()
            assert report.ok, report.mismatches

    run(verify())


def test_concurrent_reserve_settle_release_keep_the_books(backend: Backend) -> None:
    rng = random.Random(3)

    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=200 * USD)

            async def lifecycle(i: int) -> None:
                req = reserve_req(rng.randint(1, 2 * USD), (f"user:u{i % 5}", "team:team_eng"))
                res = await svc.reserve(req)
                if not res.allowed:
                    return
                await asyncio.sleep(0)
                if i % 3 == 0:
                    await svc.release(req.reservation_id, "error")
                else:
                    await svc.settle(SettleRequest(req.reservation_id, req.amount // 2, False))

            await asyncio.gather(*(lifecycle(i) for i in range(300)))
            eng = await svc.wallet("team:team_eng")
            assert eng.reserved == 0 and eng.balance >= 0
            assert eng.balance + eng.spent_total == 200 * USD
            report = await svc.audit()
            assert report.ok, report.mismatches

    run(go())
