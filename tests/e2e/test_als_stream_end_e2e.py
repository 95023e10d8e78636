"""Envoy going away logs no ERROR in the service.

When Envoy closes its access-log stream, gRPC ends the request iterator (the pending read
finishes with StopAsyncIteration) and cancels the handler in the same turn of the event loop;
the handler's pending read was dropped unretrieved, and asyncio logged "ERROR asyncio: Task
exception was never retrieved ... StopAsyncIteration" at every Envoy stop or restart (found by
the cluster failover test's log check). Through the real Envoy and the real `serve` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def test_envoy_closing_its_access_log_streams_logs_no_error(
    redis_url: str, provider: FakeProvider
) -> None:
    stack = Stack(stack_config(redis_url, provider.url)).start()
    try:
        stack.fund("team_engineering", 10**9)
        status, _, _ = stack.post("/v1/chat/completions", BODY)
        assert status == 200
        assert stack.wait_settled("team:team_engineering").spent_total > 0  # the stream is open
    finally:
        stack.envoy.stop()  # closes the access-log streams
        assert stack.stop_authz() == 0
    text = stack.service_log.read_text(encoding="utf-8", errors="replace")
    assert " ERROR " not in text and "Traceback" not in text, text
