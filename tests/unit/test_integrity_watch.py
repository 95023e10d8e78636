"""The store-integrity watch survives an odd reply: one corrupt marker read must not switch
store-loss detection off for the rest of the process (wallets/integrity.py `_loop`)."""

from __future__ import annotations

import asyncio

from keeptrusts_authz.errors import StoreDataError
from keeptrusts_authz.wallets.integrity import StoreIntegrity
from keeptrusts_authz.wallets.models import StoreMarker


class _Store:
    org_id = "acme"

    def __init__(self) -> None:
        self.calls = 0
        self.lost = False

    async def marker(self, probe: str | None = None) -> StoreMarker:
        self.calls += 1
        if self.calls == 2:
            raise StoreDataError("epoch marker is not a hash")
        if self.lost:  # came back empty: no marker, nothing stored
            return StoreMarker(None, "", "0-0", "0-0", False)
        return StoreMarker("ep1", "init", "0-0", "5-0", True)

    async def arm(self, origin: str) -> str:
        return "ep-new"


def test_the_watch_keeps_watching_after_a_failed_check() -> None:
    async def go() -> None:
        store = _Store()
        watch = StoreIntegrity(store)  # type: ignore[arg-type]
        assert (await watch.check()).ok
        watch.start(interval_seconds=0.01)
        for _ in range(200):  # the second call raised; the loop goes on
            if store.calls >= 3:
                break
            await asyncio.sleep(0.01)
        assert store.calls >= 3, "the watch ended after one failed check"
        store.lost = True
        for _ in range(200):
            if watch.regressed:
                break
            await asyncio.sleep(0.01)
        assert watch.regressed, "a store that came back empty after the error went unnoticed"
        await watch.close()

    asyncio.run(go())
