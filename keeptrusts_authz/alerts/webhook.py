"""Webhook delivery on a background thread: JSON POST, retries with exponential backoff.

`submit` never blocks (a bounded queue; when full the event is dropped and counted: the event is
still in the `kt:{org}:events` stream). The URL may carry a secret (Slack-style webhooks), so it
is never logged; only its host is.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from prometheus_client import Counter

log = logging.getLogger(__name__)

WEBHOOK_DELIVERIES = Counter(
    "keeptrusts_alert_webhook_deliveries",
    "Alert webhook deliveries by outcome (delivered, failed after retries, dropped queue full).",
    ["outcome"],
)


def _post_json(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(  # noqa: S310 - the operator configures an http(s) URL
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "keeptrusts-authz-alerts"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        status: int = response.status
        return status


class WebhookDelivery:
    def __init__(
        self,
        url: str,
        *,
        attempts: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        max_queue: int = 1000,
        post: Callable[[str, bytes, float], int] = _post_json,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("alerts.webhook_url must be an http:// or https:// URL")
        self._url = url
        self._host = parsed.hostname
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._timeout = timeout
        self._post = post
        self._sleep = sleep
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="keeptrusts-alert-webhook", daemon=True
                )
                self._thread.start()

    def submit(self, payload: Mapping[str, Any]) -> bool:
        """Queue one event for delivery; False if the queue was full (dropped)."""
        body = json.dumps(payload, sort_keys=True).encode()
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            WEBHOOK_DELIVERIES.labels("dropped").inc()
            return False
        self._ensure_thread()
        return True

    def deliver(self, body: bytes) -> bool:
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                status = self._post(self._url, body, self._timeout)
                if 200 <= status < 300:
                    WEBHOOK_DELIVERIES.labels("delivered").inc()
                    return True
                reason = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
            except Exception as exc:
                reason = type(exc).__name__
            log.warning(
                "alert webhook to %s failed (%s), attempt %d/%d",
                self._host,
                reason,
                attempt,
                self._attempts,
            )
            if attempt < self._attempts:
                self._sleep(delay)
                delay = min(delay * 2, self._max_backoff)
        WEBHOOK_DELIVERIES.labels("failed").inc()
        return False

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self.deliver(body)
            finally:
                self._queue.task_done()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is drained (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)


__all__ = ["WEBHOOK_DELIVERIES", "WebhookDelivery"]
