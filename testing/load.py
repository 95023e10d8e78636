"""Paced load and "charged exactly" bookkeeping shared by the failover and store-loss tests.

Domain level (`DomainLoad`): reserve -> settle through a WalletService, a store-unavailable
reserve answered by its compensating release (what the Check does), settles and releases retried
until the store takes them (what the settler does). HTTP level (`HttpLoad`): paced requests
through the real Envoy, each tagged with a sequence number the fake provider records, so a test
can map every served request to its reservation id and look up its charge in the ledger.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from keeptrusts_authz.errors import StoreUnavailable
from keeptrusts_authz.wallets.models import ReserveRequest, SettleRequest
from keeptrusts_authz.wallets.service import WalletService

SEQ_HEADER = "x-test-seq"


@dataclass
class Load:
    served: int = 0
    charged: int = 0
    refused: int = 0
    refused_at: list[float] = field(default_factory=list)

    @property
    def outage_seconds(self) -> float:
        return (max(self.refused_at) - min(self.refused_at)) if self.refused_at else 0.0


async def until_done(
    call: Callable[[], Awaitable[object]], attempts: int = 300, pause: float = 0.05
) -> None:
    """Retry a settle/release until the store takes it (bounded: attempts x pause)."""
    for _ in range(attempts):
        try:
            await call()
            return
        except StoreUnavailable:
            await asyncio.sleep(pause)
    raise AssertionError("the store never came back")


async def one_request(
    svc: WalletService, load: Load, cost: int, req: ReserveRequest, timeout: float = 10.0
) -> None:
    """One admitted-or-refused request: a refused reserve is released (compensation), a served
    one is settled at `cost` and counted in `load.charged`."""
    try:
        result = await asyncio.wait_for(svc.reserve(req), timeout)
    except (StoreUnavailable, TimeoutError):
        load.refused += 1
        load.refused_at.append(time.monotonic())
        await until_done(lambda: svc.release(req.reservation_id, "check_abandoned"))
        return
    assert result.outcome == "reserved", result
    load.served += 1
    load.charged += cost
    await until_done(lambda: svc.settle(SettleRequest(req.reservation_id, cost, False)))


@dataclass
class Sent:
    seq: int
    started: float
    ended: float = 0.0
    status: int = 0
    reason: str = ""


class HttpLoad:
    """Paced POSTs through the gateway on a background thread pool until `stop()`; every request
    carries `SEQ_HEADER` (the fake provider records it with the reservation id)."""

    def __init__(
        self,
        url: str,
        body: dict[str, Any],
        key: str,
        rate: float = 30.0,
        workers: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._body = json.dumps(body).encode()
        self._key = key
        self._interval = 1.0 / rate
        self._timeout = timeout
        self._workers = workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._seq = 0
        self.sent: list[Sent] = []
        self._threads: list[threading.Thread] = []

    def _next(self) -> Sent:
        with self._lock:
            self._seq += 1
            item = Sent(self._seq, time.time())
            self.sent.append(item)
            return item

    def _worker(self, offset: float) -> None:
        time.sleep(offset)
        period = self._interval * self._workers
        while not self._stop.is_set():
            t0 = time.monotonic()
            item = self._next()
            req = urllib.request.Request(self._url, data=self._body, method="POST")
            req.add_header("content-type", "application/json")
            req.add_header("authorization", f"Bearer {self._key}")
            req.add_header(SEQ_HEADER, str(item.seq))
            try:
                with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                    resp.read()
                    item.status = resp.status
            except urllib.error.HTTPError as err:
                item.status = err.code
                item.reason = err.headers.get("x-keeptrusts-reason", "") or ""
                try:
                    body = json.loads(err.read() or b"{}")
                    item.reason = item.reason or str(body.get("error", {}).get("type", ""))
                except ValueError:
                    pass
            except OSError:
                item.status = -1
            item.ended = time.time()
            self._stop.wait(max(0.0, period - (time.monotonic() - t0)))

    def start(self) -> HttpLoad:
        for i in range(self._workers):
            t = threading.Thread(target=self._worker, args=(i * self._interval,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self._timeout + 5)

    def count(self, status: int, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.status == status and s.started >= since)

    def served(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.status == 200]


__all__ = ["SEQ_HEADER", "HttpLoad", "Load", "Sent", "one_request", "until_done"]
