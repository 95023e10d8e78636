"""The burst of issue 11 item 6, for the e2e test and `make bench`: a team budget, N requests at
concurrency C through the real Envoy, each with a known true cost (the fake provider reports the
usage the request asks for in `x-fake-usage`), so utilisation and overspend come out exact.

Overspend is read from the books, not from the client: the team wallet's spent_total against its
allocation, the settle entries against the known cost of each admitted request.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.pricing.cost import cost_micros_for
from testing.stack import Stack

MODEL = "gpt-4o"
INPUT_TOKENS = 200
MAX_TOKENS = 1000
# Long enough that the reservation's input bound (body bytes) covers the reported 200 tokens.
PROMPT = "budget burst " * 80


@dataclass
class BurstResult:
    budget: int
    requests: int
    statuses: dict[int, int] = field(default_factory=dict)
    admitted_cost: int = 0  # the known true cost of every admitted request, summed
    spent: int = 0  # the team wallet's spent_total after every settle
    balance: int = 0
    reserved: int = 0
    settled_estimated: int = 0  # settle entries charged an estimate (should be 0)
    seconds: float = 0.0

    @property
    def overspent(self) -> int:
        return max(0, self.spent - self.budget) + max(0, -self.balance)

    @property
    def utilisation(self) -> float:
        return self.spent / self.budget if self.budget else 0.0

    def line(self) -> str:
        return (
            f"burst: budget {self.budget} micros, {self.requests} requests in "
            f"{self.seconds:.1f}s, statuses {dict(sorted(self.statuses.items()))}; spent "
            f"{self.spent} micros = {100 * self.utilisation:.1f}% of the budget, "
            f"overspent {self.overspent} micros, estimated settles {self.settled_estimated}"
        )


def request_bytes(key: str, output_tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": MODEL,
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: burst\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\nx-fake-usage: {INPUT_TOKENS},{output_tokens},0\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def send(port: int, payload: bytes, timeout: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
        if match:
            await asyncio.wait_for(reader.readexactly(int(match.group(1))), timeout)
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


def run_burst(
    stack: Stack,
    *,
    team: str = "team_engineering",
    key: str = "kt_cg_engineering_prod",
    budget: int = 1_000_000,
    requests: int = 400,
    concurrency: int = 50,
    seed: int = 11,
    settle_timeout: float = 60.0,
) -> BurstResult:
    """Fund `team` with `budget` micros, fire the burst, wait for every settle, read the books."""
    stack.fund(team, budget)
    rng = random.Random(seed)
    outputs = [rng.randint(100, 500) for _ in range(requests)]
    price = PriceTable.from_config(stack.cfg).resolve(MODEL).price
    result = BurstResult(budget, requests)
    port = stack.cfg.gateway.listen_port

    async def go() -> None:
        queue = list(enumerate(outputs))
        lock = asyncio.Lock()

        async def worker() -> None:
            while True:
                async with lock:
                    if not queue:
                        return
                    _, output_tokens = queue.pop()
                status = await send(port, request_bytes(key, output_tokens), 60.0)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.admitted_cost += cost_micros_for(price, INPUT_TOKENS, output_tokens)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    started = time.monotonic()
    asyncio.run(go())
    result.seconds = time.monotonic() - started
    wallet = stack.wait_settled(f"team:{team}", timeout=settle_timeout)
    result.spent, result.balance = wallet.spent_total, wallet.balance
    result.reserved = wallet.reserved

    async def estimated_settles(w: Any) -> int:
        entries = await w.ledger(count=10 * requests, wallet=f"team:{team}")
        return sum(1 for e in entries if e.op == "settle" and e.fields.get("estimated") == "1")

    result.settled_estimated = stack.wallets(estimated_settles)
    return result


__all__ = ["BurstResult", "request_bytes", "run_burst", "send"]
