"""H3: every HTTP method used to be forwarded with the org credential: `GET
/v1/chat/completions?limit=100` reached the provider (on OpenAI: the org's stored completions).
LLM routes now take POST only: anything else is a 405 JSON answer with `allow: POST`, and the
provider sees nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    # As make run brings it up: Envoy reaches the service over mTLS.
    with Stack(stack_config(redis_server.url, provider.url), transport="mtls") as s:
        yield s


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/chat/completions?limit=100"),
        ("DELETE", "/v1/chat/completions"),
        ("GET", "/v1/responses"),
        ("PUT", "/v1/messages"),
    ],
)
def test_non_post_to_an_llm_route_is_405_and_never_reaches_the_provider(
    stack: Stack, provider: FakeProvider, method: str, path: str
) -> None:
    provider.clear()
    # A body that would pass the Check as a POST: only the method may decide.
    body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    if path == "/v1/messages":
        body["model"] = "claude-sonnet-4"
    stack.fund("team_engineering", 1_000_000)
    req = urllib.request.Request(stack.url + path, data=json.dumps(body).encode(), method=method)
    req.add_header("content-type", "application/json")
    req.add_header("Authorization", "Bearer kt_cg_engineering_prod")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405
    assert err.value.headers["allow"] == "POST"
    answer = json.loads(err.value.read())
    assert answer["error"]["type"] == "method_not_allowed"
    assert provider.requests == []
