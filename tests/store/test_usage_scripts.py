"""settle.lua / expire.lua keep the usage counters and the daily burn in the same script as the
ledger entry: exact, atomic with the settle, nothing written on a replay or refusal."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime
from typing import Any

from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.store.redis_store import load_script_text
from keeptrusts_authz.wallets.models import SettleRequest
from tests.wallets.support import (
    ORG,
    USD,
    funded,
    reserve_req,
    rid,
    run,
    sync_client,
    wallet_service,
)

K = Keys(ORG)
TTL_8D_1H = (8 * 86400 + 3600) * 1000


def usage_and_burn(url: str) -> dict[str, Any]:
    """The usage hash and every burn hash (with their TTLs), read directly."""
    client = sync_client(url)
    try:
        burn = {
            key: (client.hgetall(key), client.pttl(key))
            for key in sorted(client.scan_iter(match=K.burn_prefix + "*"))
        }
        return {"usage": client.hgetall(K.usage), "burn": burn}
    finally:
        client.close()


def _utc_day_function(name: str) -> str:
    text = load_script_text(name)
    found = re.search(r"^local function utc_day\(ms\)\n.*?^end\n", text, re.S | re.M)
    assert found, name
    return found.group(0)


def test_lua_utc_day_matches_python() -> None:
    assert _utc_day_function("settle") == _utc_day_function("expire")


def test_lua_utc_day_matches_python_on_redis(redis_url: str) -> None:
    fn = _utc_day_function("settle")
    script = (
        fn + "local out = {}\nfor i, ms in ipairs(ARGV) do out[i] = utc_day(tonumber(ms)) end\n"
    )
    script += "return out\n"
    rng = random.Random(7)
    stamps = [0, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_399_999]
    # leap days, year ends, and random instants between 1970 and 2100
    stamps += [
        int(datetime(y, m, d, tzinfo=UTC).timestamp() * 1000) + delta
        for y, m, d in ((2024, 2, 29), (2024, 3, 1), (2100, 2, 28), (2025, 12, 31), (2000, 2, 29))
        for delta in (-1, 0, 1, 86_399_999)
    ]
    stamps += [rng.randrange(0, 4_102_444_800_000) for _ in range(300)]
    client = sync_client(redis_url)
    try:
        got = client.eval(script, 0, *stamps)
    finally:
        client.close()
    assert got == [datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d") for ms in stamps]


def test_settle_writes_counters_and_burn_with_the_ledger_entry(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(3 * USD)
            await svc.reserve(req)
            res = await svc.settle(
                SettleRequest(
                    req.reservation_id,
                    1_234_567,
                    False,
                    100,
                    50,
                    0,
                    "gpt-4o-2024-08-06",
                    label_model="gpt-4o",
                )
            )
            assert res.outcome == "settled"
            entry = (await svc.ledger(1))[0]
            state = usage_and_burn(redis_url)
            assert state["usage"] == {
                "spend|team_eng|engineering|0|gpt-4o": "1234567",
                "requests|team_eng|engineering|gpt-4o": "1",
                "tokens|team_eng|engineering|input|gpt-4o": "100",
                "tokens|team_eng|engineering|output|gpt-4o": "50",
                # no cached tokens: no field
            }
            day = datetime.fromtimestamp(entry.ts_ms / 1000, UTC).strftime("%Y-%m-%d")
            ((key, (burn, ttl)),) = state["burn"].items()
            assert key == K.burn(day) and burn == {"team:team_eng": "1234567"}
            assert TTL_8D_1H - 60_000 < ttl <= TTL_8D_1H

            # replay, release of a closed one, unknown reservation: no counter moves
            again = await svc.settle(SettleRequest(req.reservation_id, 9, True, 5, 5, 5))
            assert again.outcome == "already_closed"
            assert (await svc.release(req.reservation_id)).outcome == "already_closed"
            assert (await svc.settle(SettleRequest(rid(), 5, False, 1, 1, 1))).outcome == (
                "unknown"
            )
            after = usage_and_burn(redis_url)
            assert after["usage"] == state["usage"]
            assert {k: v[0] for k, v in after["burn"].items()} == {key: burn}

            # an estimated settle without a label: the reservation's (priced) model; a zero cost
            # counts the request but adds no burn
            r2 = reserve_req(USD)
            await svc.reserve(r2)
            await svc.settle(SettleRequest(r2.reservation_id, USD, True))
            r3 = reserve_req(USD)
            await svc.reserve(r3)
            await svc.settle(SettleRequest(r3.reservation_id, 0, False, label_model="other"))
            usage = usage_and_burn(redis_url)
            assert usage["usage"]["spend|team_eng|engineering|1|gpt-4o"] == str(USD)
            assert usage["usage"]["requests|team_eng|engineering|gpt-4o"] == "2"
            assert usage["usage"]["spend|team_eng|engineering|0|other"] == "0"
            assert usage["usage"]["requests|team_eng|engineering|other"] == "1"
            assert usage["burn"][key][0] == {"team:team_eng": str(1_234_567 + USD)}
            assert (await svc.audit()).ok

    run(go())


def test_release_counts_nothing(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(3 * USD)
            await svc.reserve(req)
            assert (await svc.release(req.reservation_id, "provider 503")).outcome == "released"
        assert usage_and_burn(redis_url) == {"usage": {}, "burn": {}}

    run(go())


def test_expire_counts_at_the_estimate_with_the_reserved_model(redis_url: str) -> None:
    async def go() -> None:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD, team_support=10 * USD)
            due = [
                reserve_req(2 * USD, ttl_ms=1),
                reserve_req(3 * USD, ("team:team_support",), ttl_ms=1, team="team_support"),
            ]
            for req in due:
                await svc.reserve(req)
            await asyncio.sleep(0.01)
            assert len(await svc.expire_due(100)) == 2
            # expiring again, or settling an expired one, counts nothing more
            assert await svc.expire_due(100) == []
            late = await svc.settle(SettleRequest(due[0].reservation_id, 1, True, 1, 1, 1))
            assert late.outcome == "already_closed"
            ts = (await svc.ledger(1))[0].ts_ms
        day = datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")
        state = usage_and_burn(redis_url)
        assert state["usage"] == {
            "spend|team_eng|engineering|1|gpt-4o": str(2 * USD),
            "requests|team_eng|engineering|gpt-4o": "1",
            "spend|team_support|engineering|1|gpt-4o": str(3 * USD),
            "requests|team_support|engineering|gpt-4o": "1",
        }
        assert {k: v[0] for k, v in state["burn"].items()} == {
            K.burn(day): {"team:team_eng": str(2 * USD), "team:team_support": str(3 * USD)}
        }

    run(go())


def test_late_real_usage_moves_the_counters_from_estimated_to_real(redis_url: str) -> None:
    async def go() -> int:
        async with wallet_service(redis_url) as svc:
            await funded(svc, team_eng=10 * USD)
            req = reserve_req(2 * USD, ttl_ms=1)
            await svc.reserve(req)
            await asyncio.sleep(0.01)
            assert len(await svc.expire_due(100)) == 1
            fixed = await svc.settle(SettleRequest(req.reservation_id, USD // 2, False, 100, 20, 0))
            assert fixed.outcome == "corrected"
            return (await svc.ledger(1))[0].ts_ms

    ts = run(go())
    day = datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")
    state = usage_and_burn(redis_url)
    assert state["usage"] == {
        "spend|team_eng|engineering|1|gpt-4o": "0",
        "spend|team_eng|engineering|0|gpt-4o": str(USD // 2),
        "requests|team_eng|engineering|gpt-4o": "1",
        "tokens|team_eng|engineering|input|gpt-4o": "100",
        "tokens|team_eng|engineering|output|gpt-4o": "20",
    }
    assert state["burn"][K.burn(day)][0] == {"team:team_eng": str(USD // 2)}
