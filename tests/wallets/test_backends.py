"""The same sequence on both backends writes the same ledger (ops, fields, amounts), keeps the
same refusals and closes reservations the same way (tombstones, idempotent settles, expiry)."""

from __future__ import annotations

import asyncio

from keeptrusts_authz.errors import Conflict
from keeptrusts_authz.wallets.models import SettleRequest
from tests.wallets.support import USD, Backend, funded, reserve_req, run

ADMIN = ["op", "wallet", "amount", "ts_ms", "actor", "description"]
MOVE = [*ADMIN, "from", "to", "balance_after"]
CLOSE = [*ADMIN, "reservation", "reserved", "cost"]
FIELDS = {
    "credit": [*ADMIN, "balance_after"],
    "allocate": MOVE,
    "transfer": MOVE,
    "reclaim": MOVE,
    "reserve": [
        *ADMIN,
        *("reservation", "overdraft", "team", "group", "user", "model", "balance_after"),
    ],
    "settle": [
        *CLOSE,
        *("estimated", "team", "group", "user", "model", "input_tokens", "output_tokens"),
        *("cached_tokens", "balance_after", "reserved_ms", "label"),
    ],
    "release": [*CLOSE, "team", "group", "user", "model", "balance_after"],
    "expire": [
        *CLOSE,
        *("estimated", "team", "group", "user", "model", "balance_after", "reserved_ms"),
    ],
}


def test_one_sequence_one_ledger(backend: Backend) -> None:
    async def go() -> list[tuple[str, str, int, list[str]]]:
        async with backend.service() as svc:
            await funded(svc, team_eng=10 * USD)
            await svc.transfer("team:team_eng", "team:team_support", 2 * USD, "USD", "m", "t")
            await svc.reclaim("team:team_support", 1 * USD, "USD", "back", "t")
            a, b, c = reserve_req(3 * USD), reserve_req(1 * USD), reserve_req(1 * USD, ttl_ms=1)
            for req in (a, b, c):
                assert (await svc.reserve(req)).outcome == "reserved"
            settled = await svc.settle(SettleRequest(a.reservation_id, 2 * USD, False, 10, 5))
            assert (settled.outcome, settled.reserved, settled.cost) == (
                "settled",
                3 * USD,
                2 * USD,
            )
            again = await svc.settle(SettleRequest(a.reservation_id, 9 * USD, False))
            assert (again.outcome, again.cost) == ("already_closed", 2 * USD)
            assert (await svc.release(b.reservation_id, "gave up")).outcome == "released"
            await asyncio.sleep(0.01)
            expired = await svc.expire_due()
            assert [e.reservation_id for e in expired] == [c.reservation_id]
            assert await svc.expire_due() == []
            # A release before its reserve leaves a tombstone: the late reserve is refused.
            late = reserve_req(1 * USD)
            assert (await svc.release(late.reservation_id)).outcome == "unknown"
            assert (await svc.reserve(late)).outcome == "blocked"
            # A closed reservation funds nothing again (a retried Check after its settle).
            assert (await svc.reserve(a)).outcome == "blocked"
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (5 * USD, 0, 3 * USD)
            report = await svc.audit()
            assert report.ok, report.mismatches
            entries = list(reversed(await svc.ledger(100)))
            return [(e.op, e.wallet, e.amount, list(e.fields)) for e in entries]

    rows = run(go())
    assert [(op, wallet, amount) for op, wallet, amount, _ in rows] == [
        ("credit", "org", 1010 * USD),
        ("allocate", "team:team_eng", 10 * USD),
        ("transfer", "team:team_eng", 2 * USD),
        ("reclaim", "team:team_support", 1 * USD),
        ("reserve", "team:team_eng", 3 * USD),
        ("reserve", "team:team_eng", 1 * USD),
        ("reserve", "team:team_eng", 1 * USD),
        ("settle", "team:team_eng", 2 * USD),
        ("release", "team:team_eng", 1 * USD),
        ("expire", "team:team_eng", 1 * USD),
    ]
    for op, _, _, fields in rows:
        assert fields == FIELDS[op], op


def test_idempotency_key_replays_and_refuses_another_request(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            first = await svc.credit(5 * USD, "USD", "seed", "t", idempotency_key="k-1")
            replay = await svc.credit(5 * USD, "USD", "seed", "someone-else", "k-1")
            assert (replay.replayed, replay.entry_id, replay.balances) == (
                True,
                first.entry_id,
                first.balances,
            )
            try:
                await svc.credit(6 * USD, "USD", "seed", "t", idempotency_key="k-1")
            except Conflict:
                pass
            else:
                raise AssertionError("a different request under the same key must conflict")
            assert len(await svc.ledger(10)) == 1
            assert (await svc.wallet("org")).balance == 5 * USD

    run(go())


def test_policies_overdraft_and_denial_counters(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=1 * USD)
            blocked = await svc.reserve(reserve_req(2 * USD))
            assert (blocked.outcome, blocked.seen) == ("blocked", {"team:team_eng": 1 * USD})
            held = await svc.reserve(reserve_req(2 * USD, policy="hold"))
            assert held.outcome == "hold"
            warn_req = reserve_req(2 * USD, policy="warn")
            warn = await svc.reserve(warn_req)
            assert (warn.outcome, warn.wallet) == ("overdraft", "team:team_eng")
            assert (await svc.wallet("team:team_eng")).balance == -1 * USD
            counters = await svc.store.denial_counters()
            assert counters == {"team_eng|blocked": 1, "team_eng|held": 1}
            assert (await svc.release(warn_req.reservation_id)).outcome == "released"
            assert (await svc.wallet("team:team_eng")).balance == 1 * USD

    run(go())


def test_burn_window_is_what_settle_and_expire_spent(backend: Backend) -> None:
    """The burn the API and the gauges read equals the spend ops of the ledger, on both backends."""

    async def go() -> tuple[int, int, int]:
        async with backend.service() as svc:
            await funded(svc, team_eng=10 * USD)
            a, b, c = reserve_req(3 * USD), reserve_req(1 * USD), reserve_req(2 * USD, ttl_ms=1)
            for req in (a, b, c):
                assert (await svc.reserve(req)).outcome == "reserved"
            await svc.settle(SettleRequest(a.reservation_id, 2 * USD, False, 10, 5))
            await svc.release(b.reservation_id, "gave up")  # a release spends nothing
            await asyncio.sleep(0.01)
            assert len(await svc.expire_due()) == 1  # an expiry spends the estimate
            window = await svc.burn_window()
            spent = sum(e.amount for e in await svc.ledger(100) if e.op in ("settle", "expire"))
            return window.micros("team:team_eng"), spent, window.per_day("team:team_eng")

    burned, spent, per_day = run(go())
    assert burned == spent == 4 * USD
    assert 4 * USD // 8 <= per_day <= 4 * USD // 7


def test_a_retried_check_adopts_the_open_reservation_and_keeps_it(backend: Backend) -> None:
    """Envoy retries a Check on another replica after a reset with the same check id, so the
    same reservation id: the retry adopts what the first attempt reserved (one hold, not two),
    and the first attempt's compensating release (it saw its Check cancelled) leaves it alone;
    an ordinary release (the access log's) still closes it."""

    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=10 * USD)
            first = reserve_req(3 * USD)
            assert (await svc.reserve(first)).outcome == "reserved"
            retry = await svc.reserve(first)
            assert (retry.outcome, retry.wallet, retry.amount) == (
                "duplicate",
                "team:team_eng",
                3 * USD,
            )
            kept = await svc.release(first.reservation_id, "check_abandoned", abandoned=True)
            assert kept.outcome == "already_closed"
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved) == (7 * USD, 3 * USD)
            settled = await svc.settle(SettleRequest(first.reservation_id, 2 * USD, False))
            assert (settled.outcome, settled.cost) == ("settled", 2 * USD)
            eng = await svc.wallet("team:team_eng")
            assert (eng.balance, eng.reserved, eng.spent_total) == (8 * USD, 0, 2 * USD)

            # Not adopted: the compensating release closes it (the Check gave up, nobody uses it).
            lone = reserve_req(1 * USD)
            assert (await svc.reserve(lone)).outcome == "reserved"
            gone = await svc.release(lone.reservation_id, "check_abandoned", abandoned=True)
            assert gone.outcome == "released"
            # ... and the retry that comes after it is refused, never funded on a closed id.
            assert (await svc.reserve(lone)).outcome == "blocked"
            adopted = reserve_req(1 * USD)
            assert (await svc.reserve(adopted)).outcome == "reserved"
            assert (await svc.reserve(adopted)).outcome == "duplicate"
            assert (await svc.release(adopted.reservation_id, "client")).outcome == "released"
            assert (await svc.audit()).ok

    run(go())


def test_recovered_charge_books_once_on_both_backends(backend: Backend) -> None:
    """settle.lua's recovery branch and the memory twin's: a journaled charge of a reservation
    the store does not know becomes one `settle` (reserved 0, recovered 1) and a closed record;
    a known reservation, a release tombstone or an unknown wallet are never recovered."""
    from keeptrusts_authz.wallets.models import JournaledCharge

    def charge(rid: str, wallet: str = "team:team_eng") -> JournaledCharge:
        return JournaledCharge(
            rid, wallet, "team_eng", "engineering", "alice", "gpt-4o", "gpt-4o", USD, False, 7
        )

    async def go() -> list[tuple[str, str, int, list[str]]]:
        async with backend.service() as svc:
            await funded(svc, team_eng=10 * USD)
            got = await svc.recover(charge("r_lost"))
            assert (got.outcome, got.wallet, got.reserved, got.cost) == (
                "recovered",
                "team:team_eng",
                0,
                USD,
            )
            assert (await svc.recover(charge("r_lost"))).outcome == "already_closed"
            again = await svc.settle(SettleRequest("r_lost", 5 * USD, False))
            assert again.outcome == "already_closed"
            open_one = reserve_req(2 * USD)
            await svc.reserve(open_one)
            assert (await svc.recover(charge(open_one.reservation_id))).outcome == "settled"
            await svc.release("r_gone", "no reserve")  # a tombstone
            assert (await svc.recover(charge("r_gone"))).outcome == "unknown"
            assert (await svc.recover(charge("r_x", "team:team_nobody"))).outcome == "unknown"
            w = await svc.wallet("team:team_eng")
            assert (w.spent_total, w.reserved, w.balance) == (2 * USD, 0, 8 * USD)
            rec = await svc.reservation("r_lost")
            assert rec is not None and rec.state == "settled" and rec.team == "team_eng"
            return [
                (e.op, e.wallet, e.amount, sorted(e.fields))
                for e in reversed(await svc.ledger(10))
                if e.op == "settle"
            ]

    ledger = run(go())
    assert [op for op, *_ in ledger] == ["settle", "settle"]
    recovered = ledger[0]
    assert recovered[2] == USD
    assert sorted({*FIELDS["settle"], "recovered"}) == recovered[3]
