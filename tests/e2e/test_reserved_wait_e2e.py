"""`block` with money in flight (issue 11 item 6, enforcement.wait_for_reserved_seconds), through
the real Envoy and a real Redis: a request the team wallet cannot fund now, but could once the
in-flight reservations settle, waits for their settle wake-up instead of a 402; it is refused
once the money is really spent. The burst never overspends (its utilisation figure is printed
here and measured by bench/burst_bench.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from keeptrusts_authz.wallets.models import SettleRequest
from keeptrusts_authz.wallets.service import WalletService
from testing.burst import run_burst
from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider
from tests.wallets.support import reserve_req

pytestmark = pytest.mark.envoy

TEAM = "team_engineering"
WALLET = f"team:{TEAM}"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
WAIT = 20.0  # generous: the test never relies on it running out


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    cfg = stack_config(
        redis_server.url, provider.url, enforcement={"wait_for_reserved_seconds": WAIT}
    )
    with Stack(cfg) as s:
        yield s


@pytest.fixture(autouse=True)
def _flush(redis_server: RedisServer) -> None:
    empty_keeping_epochs(redis_server.url)  # the module's service keeps running


def _blocked_count(stack: Stack) -> int:
    async def go(w: WalletService) -> int:
        counters = await w.store.denial_counters()
        return counters.get(f"{TEAM}|blocked", 0)

    return stack.wallets(go)


def _hog_everything_but(stack: Stack, left: int) -> Any:
    """Reserve all of the team's money except `left` micros, as an in-flight request would."""
    available = stack.wallet(WALLET).balance
    hog = reserve_req(available - left, (WALLET,), team=TEAM)

    async def go(w: WalletService) -> str:
        return (await w.reserve(hog)).outcome

    assert stack.wallets(go) == "reserved"
    return hog


def _settle(stack: Stack, reservation_id: str, cost: int) -> str:
    async def go(w: WalletService) -> str:
        return (await w.settle(SettleRequest(reservation_id, cost, False))).outcome

    return stack.wallets(go)


def _wait_until_waiting(stack: Stack, timeout: float = 30.0) -> None:
    """The Check's first reserve was refused (the denial counter moved): it is waiting now."""
    deadline = time.monotonic() + timeout
    while _blocked_count(stack) < 1:
        assert time.monotonic() < deadline, "the request never reached its first refusal"
        time.sleep(0.02)


def test_request_waiting_on_a_reservation_is_admitted_after_its_settle(stack: Stack) -> None:
    stack.fund(TEAM, 1_000_000)
    hog = _hog_everything_but(stack, 10)  # 10 micros left: the chat needs more
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(stack.post, "/v1/chat/completions", CHAT)
        _wait_until_waiting(stack)
        assert not fut.done()  # without the wait it would have answered 402 by now
        assert _settle(stack, hog.reservation_id, 1_000) == "settled"  # refunds most of it
        status, _, body = fut.result(timeout=60)
    assert status == 200, body
    wallet = stack.wait_settled(WALLET, timeout=30)
    assert wallet.reserved == 0 and wallet.balance >= 0
    settles = [e for e in stack.wallets(lambda w: w.ledger(wallet=WALLET)) if e.op == "settle"]
    assert len(settles) == 2  # the hog and the admitted request, each once


def test_request_is_refused_at_once_when_the_reserved_money_is_spent(stack: Stack) -> None:
    stack.fund(TEAM, 1_000_000)
    hog = _hog_everything_but(stack, 10)
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(stack.post, "/v1/chat/completions", CHAT)
        _wait_until_waiting(stack)
        assert _settle(stack, hog.reservation_id, hog.amount) == "settled"  # nothing comes back
        status, _, body = fut.result(timeout=60)
        refused_at = time.monotonic()
    assert status == 402, body
    error = json.loads(body)["error"]
    assert error["type"] == "insufficient_funds" and error["available"] == "0.00001"
    # Refused because the money is gone, not because the (20 s) wait ran out.
    assert refused_at - time.monotonic() < WAIT


def test_request_with_nothing_reserved_is_refused_without_waiting(stack: Stack) -> None:
    stack.fund(TEAM, 10)
    started = time.monotonic()
    status, _, body = stack.post("/v1/chat/completions", CHAT)
    assert status == 402, body
    assert time.monotonic() - started < WAIT


def test_burst_never_overspends(stack: Stack) -> None:
    """$1.00, 400 requests at concurrency 50, known true costs: zero micros overspent, every
    admitted request charged exactly its true cost. Utilisation is printed (the bench
    measures it); asserted only loosely, as CPU load on a shared machine may stretch settles
    past the wait."""
    result = run_burst(stack, team=TEAM, budget=1_000_000, requests=400, concurrency=50)
    print(result.line())
    assert result.overspent == 0
    assert result.reserved == 0 and result.settled_estimated == 0
    assert result.spent == result.admitted_cost  # exact books: each at its known true cost
    assert set(result.statuses) <= {200, 402}
    assert result.statuses.get(200, 0) > 0 and result.statuses.get(402, 0) > 0
    assert result.utilisation > 0.5
