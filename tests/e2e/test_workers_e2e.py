"""`serve --workers 2` behind the real Envoy (issue 13 item 3): two SO_REUSEPORT worker processes
on one port settle every request exactly; the supervisor's /metrics sums the workers' counters
(prometheus-client multiprocess mode) and serves the Redis-read wallet gauges once; SIGTERM
drains both workers."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

from keeptrusts_authz.pricing import PriceTable
from keeptrusts_authz.pricing.cost import cost_micros_for
from testing.burst import INPUT_TOKENS, MODEL, request_bytes, send
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

TEAM = "team_engineering"
REQUESTS = 120


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The supervisor uses this directory (the workers' metric files can be read per pid)."""
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    return path


@pytest.fixture(params=["key_file", "no_key_file"])
def stack(
    request: pytest.FixtureRequest, redis_url: str, multiproc_dir: Path
) -> Iterator[tuple[Stack, FakeProvider]]:
    """With a configured signing key, and without one: then the supervisor must hand every
    worker the same key, or an access-log entry reaching another worker than its Check is
    refused and the request expires at its estimate (review2 finding 1)."""
    with FakeProvider() as provider:
        s = Stack(
            stack_config(redis_url, provider.url),
            workers=2,
            signing_key=request.param == "key_file",
        )
        with s:
            yield s, provider


def _metrics(stack: Stack) -> str:
    url = f"http://127.0.0.1:{stack.cfg.server.metrics_port}/metrics"
    return urllib.request.urlopen(url, timeout=10).read().decode()


def _sample(text: str, name: str, labels: str = "") -> list[float]:
    pattern = re.escape(name) + (r"\{" + labels + r"[^}]*\}" if labels else r"(\{[^}]*\})?")
    return [float(m.group(1)) for m in re.finditer("^" + pattern + r" (\S+)$", text, re.M)]


def _per_worker_allows(multiproc_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for path in multiproc_dir.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if '"keeptrusts_authz_decisions"' in key and '"allow"' in key:
                total += value
        out[path.name] = total
    return out


def test_two_workers_settle_exactly_and_metrics_aggregate(
    stack: tuple[Stack, FakeProvider], multiproc_dir: Path
) -> None:
    s, _ = stack
    s.fund(TEAM, 100_000_000)
    price = PriceTable.from_config(s.cfg).resolve(MODEL).price
    outputs = [100 + (i * 37) % 400 for i in range(REQUESTS)]
    port = s.cfg.gateway.listen_port

    async def go() -> list[int]:
        sem = asyncio.Semaphore(16)

        async def one(out: int) -> int:
            async with sem:
                return await send(port, request_bytes("kt_cg_engineering_prod", out), 60.0)

        return await asyncio.gather(*(one(o) for o in outputs))

    statuses = asyncio.run(go())
    assert statuses == [200] * REQUESTS
    wallet = s.wait_settled(f"team:{TEAM}", timeout=60)
    assert wallet.reserved == 0
    expected = sum(cost_micros_for(price, INPUT_TOKENS, o) for o in outputs)
    assert wallet.spent_total == expected  # every request at its true cost, once
    assert s.wallets(lambda w: w.audit()).ok

    deadline = time.monotonic() + 30
    while True:  # the settle counters are written right after the Redis write
        text = _metrics(s)
        settled = sum(_sample(text, "keeptrusts_settlements_total", 'outcome="settled"'))
        if settled >= REQUESTS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    allowed = sum(_sample(text, "keeptrusts_authz_decisions_total", 'decision="allow"'))
    assert allowed == REQUESTS  # summed over both workers' files
    assert settled == REQUESTS
    # The Redis-read gauges come once, not once per worker.
    balance = _sample(text, "keeptrusts_wallet_balance", f'[^}}]*wallet="team:{TEAM}"')
    assert len(balance) == 1
    per_worker = _per_worker_allows(multiproc_dir)
    print("allow decisions per worker file:", per_worker)
    assert len(per_worker) == 2 and sum(per_worker.values()) == REQUESTS

    proc = s.service
    assert proc is not None
    started = time.monotonic()
    assert s.stop_authz(timeout=60) == 0  # SIGTERM: both workers drain and exit
    assert time.monotonic() - started < 60
