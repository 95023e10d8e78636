"""End to end with the real Envoy: ext_authz (stub) -> Lua usage filter -> fake provider -> ALS.

One Envoy + stub gRPC server + fake provider per module; each test tags its request with
`x-test-id`, which the stub turns into the reservation id, and finds its own access-log entry.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from keeptrusts_authz.config.loader import parse_config
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from keeptrusts_authz.envoy_contract import AUTHZ_NAMESPACE, USAGE_NAMESPACE
from testing.envoy_harness import EnvoyProcess, loopback_gateway
from testing.redis_server import free_port
from tests.envoy.stub_authz import StubServer, filter_metadata
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy


def _config(provider_url: str, **gateway: Any) -> Any:
    return parse_config(
        {
            "consumer_groups": [
                {"name": "engineering", "api_key": "kt_cg_eng", "wallet_team_id": "team_eng"}
            ],
            "providers": [
                {
                    "name": "openai",
                    "kind": "openai",
                    "url": provider_url,
                    "timeout_seconds": 30,
                    # The fake provider's controls and the test's correlation id.
                    "allowed_request_headers": ["x-fake-*", "x-test-id"],
                },
                {
                    "name": "anthropic",
                    "kind": "anthropic",
                    "url": provider_url,
                    "allowed_request_headers": ["x-fake-*", "x-test-id"],
                },
            ],
            "gateway": loopback_gateway(max_request_bytes=64 * 1024, **gateway),
        }
    )


@dataclass
class Stack:
    cfg: Any
    fake: FakeProvider
    stub: StubServer
    envoy: EnvoyProcess

    @property
    def port(self) -> int:
        return int(self.cfg.gateway.listen_port)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="module")
def stack(fake: FakeProvider) -> Iterator[Stack]:
    cfg = _config(fake.url)
    with StubServer(cfg.gateway.authz_port) as stub, EnvoyProcess(render_envoy_yaml(cfg)) as envoy:
        yield Stack(cfg, fake, stub, envoy)
        # The Lua filter never failed (runtime errors are logged by Envoy at error level).
        lua_errors = [line for line in envoy.log().splitlines() if "[lua]" in line]
        assert not lua_errors, "\n".join(lua_errors)


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: bytes
    test_id: str


def call(
    port: int,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Result:
    test_id = uuid.uuid4().hex[:24]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {
        "content-type": "application/json",
        "authorization": "Bearer kt_cg_caller_key",
        "accept-encoding": "gzip, deflate",
        "x-test-id": test_id,
        **(headers or {}),
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=data if method == "POST" else None, headers=hdrs)
        resp = conn.getresponse()
        return Result(
            resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(), test_id
        )
    finally:
        conn.close()


def entry_for(stack: Stack, res: Result) -> Any:
    return stack.stub.als.wait_for("r_" + res.test_id)


def usage_of(entry: Any) -> dict[str, Any]:
    return filter_metadata(entry).get(USAGE_NAMESPACE, {})


def provider_request(fake: FakeProvider, res: Result) -> Any:
    for r in reversed(fake.requests):
        if r.headers.get("x-test-id") == res.test_id:
            return r
    raise AssertionError("request did not reach the provider")


def expect_usage(
    entry: Any,
    *,
    input: int,
    output: int,
    cached: int = 0,
    cache_creation: int = 0,
    cache_creation_1h: int = 0,
    model: str,
    stream: bool,
    api: str,
    streamed: int | None = None,
    service_tier: str | None = None,
) -> None:
    """`service_tier`: what the fake provider reports (OpenAI `default`, Anthropic `standard`
    unless given; embeddings report none)."""
    if service_tier is None:
        service_tier = "standard" if api == "anthropic" else "default"
    u = dict(usage_of(entry))
    streamed_bytes = u.pop("streamed_output_bytes")
    streamed_choices = u.pop("streamed_choices")
    u.pop("usage_injected", None)  # asserted where the request side injects
    if not stream:
        assert (streamed_bytes, streamed_choices) == (0, 0)
    if streamed is not None:
        assert (streamed_bytes, streamed_choices) == (streamed, 1 if streamed else 0)
    assert u == {
        "usage_found": True,
        "complete": True,
        "stream": stream,
        "api": api,
        "model": model,
        "input_tokens": input,
        "output_tokens": output,
        "cached_tokens": cached,
        "cache_creation_tokens": cache_creation,
        "cache_creation_1h_tokens": cache_creation_1h,
        "service_tier": service_tier,
    }


# --------------------------------------------------------------------------- OpenAI chat


def test_chat_json_usage_and_authz_metadata(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        {"x-fake-usage": "120,30,10", "x-fake-model": "gpt-4o-mini-2024-07-18"},
    )
    assert res.status == 200, res.body
    assert json.loads(res.body)["usage"]["prompt_tokens"] == 120
    entry = entry_for(stack, res)
    expect_usage(
        entry,
        input=120,
        output=30,
        cached=10,
        model="gpt-4o-mini-2024-07-18",
        stream=False,
        api="openai",
    )
    authz = filter_metadata(entry)[AUTHZ_NAMESPACE]
    assert authz["reservation_id"] == "r_" + res.test_id
    assert authz["team"] == "team_test"
    assert authz["estimate_micros"] == 12345
    assert entry.response.response_code.value == 200
    # The provider got the provider credential, not the caller's key, and no accept-encoding.
    got = provider_request(stack.fake, res)
    assert got.headers["authorization"] == "Bearer sk-openai-provider"
    assert "kt_cg_caller_key" not in json.dumps(got.headers)
    assert "accept-encoding" not in got.headers
    assert got.headers["host"] == f"127.0.0.1:{stack.fake.port}"


def test_chat_sse_with_client_include_usage(stack: Stack) -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    res = call(stack.port, "/v1/chat/completions", body, {"x-fake-usage": "77,12,5"})
    assert res.status == 200
    assert res.headers["content-type"].startswith("text/event-stream")
    assert b'"usage":{"prompt_tokens":77' in res.body and res.body.endswith(b"data: [DONE]\n\n")
    assert b'"choices":[]' in res.body, "the client asked for the usage chunk: it keeps it"
    expect_usage(
        entry_for(stack, res),
        input=77,
        output=12,
        cached=5,
        model="gpt-4o",
        stream=True,
        api="openai",
    )
    # Sent as the client asked: nothing injected.
    assert provider_request(stack.fake, res).body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "extra",
    [{}, {"stream_options": {}}, {"stream_options": None}, {"stream_options": {"x": 1}}],
    ids=["absent", "empty", "null", "other-option"],
)
def test_chat_sse_without_include_usage_gets_it_injected(
    stack: Stack, extra: dict[str, Any]
) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": 'say "stream": true {}'}],
        "stream": True,
        **extra,
    }
    res = call(
        stack.port, "/v1/chat/completions", body, {"x-fake-usage": "300,40,0", "x-fake-chunk": "9"}
    )
    assert res.status == 200
    expect_usage(
        entry_for(stack, res),
        input=300,
        output=40,
        model="gpt-4o",
        stream=True,
        api="openai",
        streamed=len("tok0 tok1 tok2 "),
    )
    assert usage_of(entry_for(stack, res))["usage_injected"] is True
    # The usage-only chunk the client did not ask for is read, then removed from its stream.
    events = res.body.split(b"\n\n")
    assert b'"choices":[]' not in res.body and b'"prompt_tokens"' not in res.body
    assert events[-2:] == [b"data: [DONE]", b""]
    assert all(e.startswith(b"data: ") for e in events[:-1]), events
    assert len(events) == 7  # role, three deltas, stop, [DONE], and the end
    got = provider_request(stack.fake, res)
    assert got.body["stream_options"]["include_usage"] is True
    if extra.get("stream_options"):
        assert got.body["stream_options"]["x"] == 1
    assert got.body["messages"] == body["messages"]
    assert int(got.headers["content-length"]) == len(got.raw)


def test_explicit_include_usage_false_is_respected(stack: Stack) -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": False},
        "messages": [{"role": "user", "content": "hi"}],
    }
    res = call(stack.port, "/v1/chat/completions", body)
    assert res.status == 200
    u = usage_of(entry_for(stack, res))
    assert u["usage_found"] is False and u["complete"] is False and u["stream"] is True
    assert u["model"] == "gpt-4o"


def test_legacy_completions_stream_injected(stack: Stack) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": True}
    res = call(stack.port, "/v1/completions", body, {"x-fake-usage": "9,4,0"})
    assert res.status == 200
    expect_usage(
        entry_for(stack, res),
        input=9,
        output=4,
        model="gpt-3.5-turbo-instruct",
        stream=True,
        api="openai",
        service_tier="",  # the legacy completions API reports no tier
    )


def test_chat_sse_split_into_tiny_chunks(stack: Stack) -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}],
    }
    res = call(
        stack.port,
        "/v1/chat/completions",
        body,
        {"x-fake-usage": "1234,567,89", "x-fake-chunk": "3", "x-fake-events": "5"},
    )
    assert res.status == 200
    expect_usage(
        entry_for(stack, res),
        input=1234,
        output=567,
        cached=89,
        model="gpt-4o",
        stream=True,
        api="openai",
    )


# --------------------------------------------------------------------------- Responses API


def test_responses_json(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/responses",
        {"model": "gpt-4.1", "input": "hi"},
        {"x-fake-usage": "50,25,20"},
    )
    assert res.status == 200
    expect_usage(
        entry_for(stack, res),
        input=50,
        output=25,
        cached=20,
        model="gpt-4.1",
        stream=False,
        api="openai_responses",
    )


def test_responses_sse(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/responses",
        {"model": "gpt-4.1", "input": "hi", "stream": True},
        {"x-fake-usage": "51,26,21", "x-fake-chunk": "11"},
    )
    assert res.status == 200
    assert b"event: response.completed" in res.body
    expect_usage(
        entry_for(stack, res),
        input=51,
        output=26,
        cached=21,
        model="gpt-4.1",
        stream=True,
        api="openai_responses",
    )
    # The Responses API always reports usage: no injection there.
    assert "stream_options" not in provider_request(stack.fake, res).body


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_json(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/messages",
        {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": []},
        {"x-fake-usage": "1000,200,600,100,30", "x-api-key": "kt_cg_caller_key"},
    )
    assert res.status == 200
    # As Anthropic reports it: input_tokens (300) excludes cache reads (600) and writes (100),
    # 30 of which with the one-hour TTL (usage.cache_creation.ephemeral_1h_input_tokens).
    expect_usage(
        entry_for(stack, res),
        input=300,
        output=200,
        cached=600,
        cache_creation=100,
        cache_creation_1h=30,
        model="claude-sonnet-4-5",
        stream=False,
        api="anthropic",
    )
    got = provider_request(stack.fake, res)
    assert got.headers["x-api-key"] == "sk-ant-provider"
    # headers_to_remove in the Check's OK response is honoured: the caller's key is gone.
    assert "authorization" not in got.headers
    assert "kt_cg_caller_key" not in json.dumps(got.headers)


def test_anthropic_sse_split_chunks(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [], "stream": True},
        {"x-fake-usage": "500,90,40,10", "x-fake-chunk": "7", "x-fake-events": "4"},
    )
    assert res.status == 200
    assert res.body.count(b"event: message_delta") == 2
    # message_start usage + the LAST cumulative message_delta output_tokens.
    expect_usage(
        entry_for(stack, res),
        input=450,
        output=90,
        cached=40,
        cache_creation=10,
        model="claude-haiku-4-5",
        stream=True,
        api="anthropic",
        streamed=len("c0c1c2c3"),
    )
    assert "stream_options" not in provider_request(stack.fake, res).body


# --------------------------------------------------------------------------- embeddings


def test_embeddings(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        {"x-fake-usage": "8,0,0"},
    )
    assert res.status == 200
    expect_usage(
        entry_for(stack, res),
        input=8,
        output=0,
        model="text-embedding-3-small",
        stream=False,
        api="openai",
        service_tier="",
    )


def test_large_json_response_streams_through(stack: Stack) -> None:
    """A 3 MB embeddings response: not buffered by Envoy (no 500), usage still found."""
    res = call(
        stack.port,
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": ["x"] * 6000},
        {"x-fake-usage": "6000,0,0"},
    )
    assert res.status == 200
    assert len(res.body) > 2 * 1024 * 1024
    expect_usage(
        entry_for(stack, res),
        input=6000,
        output=0,
        model="text-embedding-3-small",
        stream=False,
        api="openai",
        service_tier="",
    )


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_provider_500_has_no_usage(stack: Stack, path: str) -> None:
    res = call(stack.port, path, {"model": "gpt-4o", "messages": []}, {"x-fake-status": "500"})
    assert res.status == 500
    entry = entry_for(stack, res)
    assert entry.response.response_code.value == 500
    u = usage_of(entry)
    assert u["usage_found"] is False
    assert u["input_tokens"] == 0 and u["output_tokens"] == 0
    assert filter_metadata(entry)[AUTHZ_NAMESPACE]["reservation_id"] == "r_" + res.test_id


def test_provider_500_stream_request(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [], "stream": True},
        {"x-fake-status": "503"},
    )
    assert res.status == 503
    u = usage_of(entry_for(stack, res))
    assert u["usage_found"] is False and u["stream"] is False


def test_oversize_body_is_413_without_check(stack: Stack) -> None:
    before = len(stack.stub.authz.checks)
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * (80 * 1024)}]}
    res = call(stack.port, "/v1/chat/completions", big)
    assert res.status == 413
    time.sleep(0.2)
    assert len(stack.stub.authz.checks) == before
    assert not any(r.headers.get("x-test-id") == res.test_id for r in stack.fake.requests)


def test_body_just_under_limit_is_checked_with_full_body(stack: Stack) -> None:
    content = "y" * (60 * 1024)
    res = call(
        stack.port,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]},
    )
    assert res.status == 200
    check = next(
        c
        for c in stack.stub.authz.checks
        if c.attributes.request.http.headers.get("x-test-id") == res.test_id
    )
    http_req = check.attributes.request.http
    # pack_as_bytes: the body arrives as raw_body bytes, complete.
    assert json.loads(http_req.raw_body)["messages"][0]["content"] == content
    assert http_req.body == ""


def test_denied_check_never_reaches_provider(stack: Stack) -> None:
    res = call(stack.port, "/v1/chat/completions", {"model": "gpt-4o"}, {"x-stub-deny": "402"})
    assert res.status == 402
    assert json.loads(res.body) == {"error": {"type": "denied"}}
    assert not any(r.headers.get("x-test-id") == res.test_id for r in stack.fake.requests)


def test_no_provider_header_is_404_json(stack: Stack) -> None:
    res = call(stack.port, "/v1/chat/completions", {"model": "gpt-4o"}, {"x-stub-no-provider": "1"})
    assert res.status == 404
    assert res.headers["content-type"] == "application/json"
    assert json.loads(res.body)["error"]["type"] == "not_found"


def test_client_spoofed_provider_header_still_checked(stack: Stack) -> None:
    res = call(
        stack.port,
        "/v1/chat/completions",
        {"model": "gpt-4o"},
        {"x-keeptrusts-provider": "openai", "x-stub-deny": "401"},
    )
    assert res.status == 401


def test_healthz_without_check(stack: Stack) -> None:
    before = len(stack.stub.authz.checks)
    res = call(stack.port, "/healthz", b"", method="GET")
    assert res.status == 200 and json.loads(res.body) == {"status": "ok"}
    assert len(stack.stub.authz.checks) == before


def test_client_disconnect_mid_stream(stack: Stack) -> None:
    """The client goes away mid-stream: the entry still arrives (with the authz metadata);
    the Lua filter never finished, so there is no complete usage -> settle at estimate."""
    test_id = uuid.uuid4().hex[:24]
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": []}).encode()
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        + f"x-test-id: {test_id}\r\nx-fake-slow: 0.2\r\nx-fake-events: 40\r\n".encode()
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert b"200" in sock.recv(4096).split(b"\r\n", 1)[0]
    time.sleep(0.3)
    sock.close()
    entry = stack.stub.als.wait_for("r_" + test_id)
    fm = filter_metadata(entry)
    assert fm[AUTHZ_NAMESPACE]["reservation_id"] == "r_" + test_id
    u = fm.get(USAGE_NAMESPACE, {})
    assert u.get("complete") is not True and u.get("usage_found") is not True
    # What did stream before the cut-off is counted ("tok0 " ... per event; 40 would follow).
    assert 0 < u["streamed_output_bytes"] < 40 * len("tok0 ")
    assert u["streamed_choices"] == 1


# --------------------------------------------------------------------------- other configs


def test_inject_disabled_settles_without_usage(fake: FakeProvider) -> None:
    cfg = _config(fake.url, inject_stream_usage=False)
    with StubServer(cfg.gateway.authz_port) as stub, EnvoyProcess(render_envoy_yaml(cfg)):
        body = {"model": "gpt-4o", "stream": True, "messages": []}
        res = call(cfg.gateway.listen_port, "/v1/chat/completions", body)
        assert res.status == 200
        u = usage_of(stub.als.wait_for("r_" + res.test_id))
        assert u["usage_found"] is False and u["stream"] is True and u["complete"] is False
        assert "stream_options" not in provider_request(fake, res).body


def test_authz_down_is_503(fake: FakeProvider) -> None:
    cfg = _config(fake.url)  # nothing listens on the authz port
    with EnvoyProcess(render_envoy_yaml(cfg)):
        res = call(cfg.gateway.listen_port, "/v1/chat/completions", {"model": "gpt-4o"})
        assert res.status == 503
        assert not any(r.headers.get("x-test-id") == res.test_id for r in fake.requests)


def test_free_port_helper_is_not_reserved_port() -> None:
    assert free_port() not in (6379, 9191, 9901, 10000)


def test_sse_is_not_buffered(stack: Stack) -> None:
    """The first event reaches the client long before the (slow) stream ends."""
    body = json.dumps({"model": "gpt-4o", "stream": True, "messages": []})
    hdrs = {"content-type": "application/json", "x-fake-slow": "0.3", "x-fake-events": "5"}
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        start = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=body, headers=hdrs)
        resp = conn.getresponse()
        first = resp.read1(65536)
        first_at = time.monotonic() - start
        rest = resp.read()
        total = time.monotonic() - start
    finally:
        conn.close()
    assert first.startswith(b"data: ")
    assert total >= 1.5
    assert first_at < 0.8, f"first bytes after {first_at:.2f}s of {total:.2f}s"
    assert (first + rest).endswith(b"data: [DONE]\n\n")
