"""store/topups.py + wallets/topups.py on real Redis (top-ups have no in-memory twin): the
listing is never truncated, and a team's pending requests are capped (review #15)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from keeptrusts_authz.store.topups import RedisTopUpStore
from keeptrusts_authz.wallets.topups import MAX_PENDING_PER_TEAM, TooManyPendingTopUps, TopUps
from tests.wallets.support import ORG, USD, run


def test_listing_pages_past_500_and_pending_requests_are_capped_per_team(redis_url: str) -> None:
    async def body() -> None:
        client = aioredis.from_url(redis_url, decode_responses=True)
        try:
            await client.flushall()
            store = RedisTopUpStore(client, ORG)
            for _ in range(505):  # decided ones (denied) stay listed for 30 days
                t = await store.create(
                    team="team_ops", wallet="team:team_ops", amount=USD, description="",
                    requested_by="ops-lead",
                )  # fmt: skip
                await store.deny(t.id, actor="billing", reason="")
            listed = await store.list()
            assert len(listed) == 505
            assert len({t.id for t in listed}) == 505

            topups = TopUps(store, {"team_eng", "team_ops"}, "USD")
            first = [
                await topups.request("team_eng", USD, "", "eng-lead")
                for _ in range(MAX_PENDING_PER_TEAM)
            ]
            with pytest.raises(TooManyPendingTopUps) as info:
                await topups.request("team_eng", USD, "", "eng-lead")
            assert info.value.http_status == 409
            assert info.value.details["pending"] == MAX_PENDING_PER_TEAM
            await topups.request("team_ops", USD, "", "ops-lead")  # another team: not capped
            await topups.deny(first[0].id, "billing", "no")
            await topups.request("team_eng", USD, "", "eng-lead")  # one decided: room again
            assert len(await store.list()) == 505 + MAX_PENDING_PER_TEAM + 2
        finally:
            await client.aclose()

    run(body())
