"""A real settlement arriving after an estimated close (an estimated settle, or the sweeper's
expiry) replaces the estimate: one `correct` ledger entry moves the difference, idempotently, and
the audit replay agrees with the wallets (both backends)."""

from __future__ import annotations

import asyncio

from keeptrusts_authz.wallets.models import SettleRequest
from tests.wallets.support import USD, Backend, funded, reserve_req, run


def test_late_real_usage_corrects_an_estimated_settle_and_an_expiry(backend: Backend) -> None:
    async def go() -> None:
        async with backend.service() as svc:
            await funded(svc, team_eng=10 * USD)
            a, b = reserve_req(3 * USD), reserve_req(2 * USD, ttl_ms=1)
            for req in (a, b):
                assert (await svc.reserve(req)).outcome == "reserved"
            est = await svc.settle(SettleRequest(a.reservation_id, 3 * USD, True))
            assert est.outcome == "settled"
            await asyncio.sleep(0.01)
            assert [e.reservation_id for e in await svc.expire_due()] == [b.reservation_id]
            assert (await svc.wallet("team:team_eng")).spent_total == 5 * USD

            fixed = await svc.settle(SettleRequest(a.reservation_id, 1 * USD, False, 10, 5, 2))
            assert (fixed.outcome, fixed.reserved, fixed.cost) == ("corrected", 3 * USD, 1 * USD)
            late = await svc.settle(SettleRequest(b.reservation_id, 4 * USD, False, 7, 3))
            assert (late.outcome, late.cost) == ("corrected", 4 * USD)
            # Idempotent: the same (or any other) settle again changes nothing.
            for rid in (a.reservation_id, b.reservation_id):
                again = await svc.settle(SettleRequest(rid, 9 * USD, False))
                assert again.outcome == "already_closed"
            # An estimate never replaces a real cost, nor another estimate.
            assert (
                await svc.settle(SettleRequest(a.reservation_id, 1, True))
            ).outcome == "already_closed"

            wallet = await svc.wallet("team:team_eng")
            assert (wallet.spent_total, wallet.balance, wallet.reserved) == (
                5 * USD,
                5 * USD,
                0,
            )
            entries = await svc.ledger(count=20)
            corrections = [e for e in entries if e.op == "correct"]
            assert len(corrections) == 2
            by_rid = {e.fields["reservation"]: e.fields for e in corrections}
            fa = by_rid[a.reservation_id]
            assert (fa["previous_cost"], fa["cost"], fa["delta"], fa["estimated"]) == (
                str(3 * USD),
                str(1 * USD),
                str(-2 * USD),
                "0",
            )
            assert fa["input_tokens"] == "10" and fa["balance_after"] == str(7 * USD)
            assert by_rid[b.reservation_id]["delta"] == str(2 * USD)
            report = await svc.audit()
            assert report.ok, report.mismatches
            reservation = await svc.reservation(a.reservation_id)
            assert reservation is not None and reservation.cost == 1 * USD

    run(go())
