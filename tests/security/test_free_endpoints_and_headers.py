"""H3 (rest) / L4 (headers), issue 9 item 6 and issue 11 item 7: free read-only endpoints and
what of a request's headers reaches the provider, through the real Envoy and the fake provider
(which records every request it receives).

- `GET /v1/models` and Anthropic `POST /v1/messages/count_tokens` pass through, authenticated by
  the `kt_` key, with no reservation: no wallet change, no ledger entry. The model list is
  filtered to the group's `allowed_models` (in Envoy's Lua filter, on the provider's answer).
- Any other path stays 404 `unsupported_endpoint`; a free path with the wrong method is a 405.
- Attack (before): `x-keeptrusts-team/-user/-reservation/-ticket` and the client's
  `OpenAI-Organization` / `OpenAI-Project` reached the provider (account selection with the org's
  key), and so did any header a client invented. Now an allow-list per provider cluster decides
  what passes (transport essentials, the provider's API headers such as `anthropic-*` /
  `openai-beta` / `x-stainless-*`, the credential header, `providers[].headers` and
  `providers[].allowed_request_headers`); everything else, every `x-keeptrusts-*` header and the
  account-selection headers are removed, and the provider config's fixed `headers` are set.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

USD = 1_000_000
ALL_MODELS = ["gpt-4o-mini", "gpt-4o", "o1", "claude-sonnet-4-5", "claude-3-5-haiku"]


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    cfg = stack_config(redis_server.url, provider.url)
    # The org's own account selection, set by the gateway (what clients send is dropped).
    cfg["providers"][0]["headers"] = {"OpenAI-Organization": "org-acme"}
    with Stack(cfg, transport="mtls") as s:  # as make run: Envoy -> service over mTLS
        yield s


@pytest.fixture(autouse=True)
def _clean(redis_server: RedisServer, provider: FakeProvider) -> None:
    empty_keeping_epochs(redis_server.url)
    provider.clear()
    provider.models = list(ALL_MODELS)
    provider.models_raw = None


def request(
    stack: Stack,
    method: str,
    path: str,
    key: str = "kt_cg_engineering_prod",
    body: object = None,
    headers: dict[str, str] | None = None,
    anthropic_style: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(stack.url + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if anthropic_style:
        req.add_header("x-api-key", key)
        req.add_header("anthropic-version", "2023-06-01")
    else:
        req.add_header("authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def _books(stack: Stack) -> tuple[object, int]:
    wallet = stack.wallet("team:team_engineering")
    return (wallet.balance, wallet.reserved, wallet.spent_total), len(
        stack.wallets(lambda w: w.ledger(count=100))
    )


def test_get_models_passes_through_without_a_reservation(
    stack: Stack, provider: FakeProvider
) -> None:
    stack.fund("team_engineering", 5 * USD)
    before = _books(stack)
    status, _, raw = request(stack, "GET", "/v1/models")
    assert status == 200, raw
    assert [m["id"] for m in json.loads(raw)["data"]] == ALL_MODELS
    seen = provider.last()
    assert (seen.method, seen.path) == ("GET", "/v1/models")
    assert seen.headers["authorization"] == "Bearer sk-test-openai-secret"  # Envoy's, not ours
    assert "kt_cg_engineering_prod" not in json.dumps(seen.headers)
    assert _books(stack) == before  # no wallet change, no ledger entry


def test_get_models_needs_a_valid_key(stack: Stack, provider: FakeProvider) -> None:
    status, _, raw = request(stack, "GET", "/v1/models", key="kt_nope")
    assert status == 401
    assert json.loads(raw)["error"]["type"] == "invalid_api_key"
    assert provider.requests == []


def test_get_models_is_filtered_to_the_groups_allowed_models(
    stack: Stack, provider: FakeProvider
) -> None:
    # legal: allowed_models ["claude-*"]
    status, headers, raw = request(stack, "GET", "/v1/models", key="kt_cg_legal_prod")
    assert status == 200, raw
    answer = json.loads(raw)
    assert [m["id"] for m in answer["data"]] == ["claude-sonnet-4-5", "claude-3-5-haiku"]
    assert answer["has_more"] is False  # the rest of the provider's answer is kept
    assert answer["data"][0] == {"id": "claude-sonnet-4-5", "object": "model", "owned_by": "fake"}
    assert int(headers["content-length"]) == len(raw)
    # Anthropic's list (anthropic-version names it) goes to the Anthropic provider, filtered too.
    provider.models = ["claude-sonnet-4-5", "gpt-4o"]
    status, _, raw = request(
        stack, "GET", "/v1/models", key="kt_cg_legal_prod", anthropic_style=True
    )
    assert status == 200, raw
    assert [m["id"] for m in json.loads(raw)["data"]] == ["claude-sonnet-4-5"]
    assert provider.last().headers["x-api-key"] == "sk-ant-test-secret"


def test_escaped_ids_are_matched_decoded(stack: Stack, provider: FakeProvider) -> None:
    provider.models = ['claude-"quoted\\', "gpt-4o", "claude-\u00e9"]
    status, _, raw = request(stack, "GET", "/v1/models", key="kt_cg_legal_prod")
    assert status == 200, raw
    assert [m["id"] for m in json.loads(raw)["data"]] == ['claude-"quoted\\', "claude-\u00e9"]


def test_an_unreadable_model_list_is_emptied_for_a_filtered_group(
    stack: Stack, provider: FakeProvider
) -> None:
    provider.models_raw = b'{"object":"list","data":[{"id":"gpt-4o"},'  # cut off
    status, _, raw = request(stack, "GET", "/v1/models", key="kt_cg_legal_prod")
    assert status == 200, raw
    assert json.loads(raw) == {"object": "list", "data": []}
    # An unfiltered group gets the provider's bytes as they are.
    status, _, raw = request(stack, "GET", "/v1/models")
    assert raw == provider.models_raw


def test_count_tokens_passes_through_without_a_reservation(
    stack: Stack, provider: FakeProvider
) -> None:
    stack.fund("team_engineering", 5 * USD)
    before = _books(stack)
    body = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "hello"}],
    }
    status, _, raw = request(
        stack, "POST", "/v1/messages/count_tokens", body=body, anthropic_style=True
    )
    assert status == 200, raw
    assert json.loads(raw)["input_tokens"] > 0
    seen = provider.last()
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.headers["x-api-key"] == "sk-ant-test-secret"
    assert _books(stack) == before


def test_count_tokens_respects_allowed_models(stack: Stack, provider: FakeProvider) -> None:
    body = {"model": "gpt-4o", "messages": []}
    status, _, raw = request(
        stack,
        "POST",
        "/v1/messages/count_tokens",
        key="kt_cg_legal_prod",
        body=body,
        anthropic_style=True,
    )
    assert status == 403, raw
    assert json.loads(raw)["error"]["type"] == "model_not_allowed"
    assert provider.requests == []


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/files", 404, "unsupported_endpoint"),
        ("GET", "/v1/models/gpt-4o", 404, "unsupported_endpoint"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
        ("GET", "/v1/messages/count_tokens", 405, "method_not_allowed"),
    ],
)
def test_everything_else_is_refused_and_never_forwarded(
    stack: Stack, provider: FakeProvider, method: str, path: str, status: int, code: str
) -> None:
    got, headers, raw = request(stack, method, path)
    assert got == status, raw
    assert json.loads(raw)["error"]["type"] == code
    if status == 405:
        assert headers["allow"] in ("GET", "POST")
    assert provider.requests == []


SPOOFED = {
    "x-keeptrusts-team": "team_legal",
    "x-keeptrusts-user": "alice",
    "x-keeptrusts-ticket": "t_forged",
    "x-keeptrusts-reservation": "r_forged",
    "x-keeptrusts-check-id": "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f",
    "x-keeptrusts-anything": "1",
    "OpenAI-Organization": "org-someone-else",
    "OpenAI-Project": "proj_someone_else",
    "x-client-trace": "dropped",
    "x-evil": "1",
    "x-forwarded-host": "evil.example",
}
# What SDKs send and the provider must still see (beta features, Stainless telemetry).
SDK_HEADERS = {
    "openai-beta": "assistants=v2",
    "anthropic-beta": "prompt-caching-2024-07-31",
    "x-stainless-lang": "python",
    "idempotency-key": "stainless-python-retry-1",
}


def test_only_allowed_headers_reach_the_provider(stack: Stack, provider: FakeProvider) -> None:
    stack.fund("team_engineering", 5 * USD)
    body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    headers = {**SPOOFED, **SDK_HEADERS}
    status, _, raw = request(stack, "POST", "/v1/chat/completions", body=body, headers=headers)
    assert status == 200, raw
    seen = provider.last().headers
    assert not [h for h in seen if h.startswith("x-keeptrusts-")], seen
    assert "openai-project" not in seen
    # The provider config's own account selection replaces the client's.
    assert seen["openai-organization"] == "org-acme"
    assert seen["authorization"] == "Bearer sk-test-openai-secret"
    # An allow-list, not a strip list: a header nobody listed never reaches the provider.
    for name in ("x-evil", "x-client-trace", "x-forwarded-host", "anthropic-beta"):
        assert name not in seen, (name, seen)
    assert seen["openai-beta"] == "assistants=v2"
    assert seen["x-stainless-lang"] == "python"
    assert seen["idempotency-key"] == "stainless-python-retry-1"
    assert seen["content-type"] == "application/json"
    assert stack.wait_settled("team:team_engineering").spent_total > 0


def test_a_client_cannot_choose_the_check_id(stack: Stack, provider: FakeProvider) -> None:
    """The reservation id derives from the per-request check id (so a Check retried on another
    replica finds its reservation); Envoy writes it over any client value. Two requests sending
    the same id are two reservations, both charged: sharing one would serve the second free."""
    stack.fund("team_engineering", 5 * USD)
    body = {"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    forged = {"x-keeptrusts-check-id": SPOOFED["x-keeptrusts-check-id"]}
    for _ in range(2):
        status, _, raw = request(stack, "POST", "/v1/chat/completions", body=body, headers=forged)
        assert status == 200, raw
    entries = stack.wallets(lambda w: w.ledger(100))
    reserves = {e.fields["reservation"] for e in entries if e.op == "reserve"}
    assert len(reserves) == 2, reserves
    deadline = time.monotonic() + 10
    while len({e.fields["reservation"] for e in entries if e.op == "settle"}) < 2:
        assert time.monotonic() < deadline, [e.op for e in entries]
        time.sleep(0.1)
        entries = stack.wallets(lambda w: w.ledger(100))


def test_anthropic_requests_lose_the_same_headers(stack: Stack, provider: FakeProvider) -> None:
    stack.fund("team_engineering", 5 * USD)
    body = {"model": "claude-3-5-haiku", "max_tokens": 8, "messages": []}
    status, _, raw = request(
        stack,
        "POST",
        "/v1/messages",
        body=body,
        headers={
            **SPOOFED,
            **SDK_HEADERS,
            # the anthropic SDK's workspace / user-profile settings: account selection, which
            # the `anthropic-*` allow-list pattern would otherwise pass
            "anthropic-workspace-id": "wrkspc_other",
            "anthropic-user-profile-id": "prof_other",
        },
        anthropic_style=True,
    )
    assert status == 200, raw
    seen = provider.last().headers
    assert not [h for h in seen if h.startswith("x-keeptrusts-")], seen
    assert "openai-organization" not in seen and "openai-project" not in seen  # not set here
    assert "anthropic-workspace-id" not in seen and "anthropic-user-profile-id" not in seen
    assert seen["anthropic-version"] == "2023-06-01"
    assert seen["x-api-key"] == "sk-ant-test-secret"
    assert seen["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert seen["x-stainless-lang"] == "python"
    for name in ("x-evil", "x-client-trace", "x-forwarded-host", "openai-beta", "idempotency-key"):
        assert name not in seen, (name, seen)
