"""C1: provider credentials are Envoy's alone.

Attack: a direct gRPC `Authorization/Check` with any valid `kt_` key used to return
`ok_response.headers` carrying `authorization: Bearer <the org's OpenAI key>` (and `x-api-key`
for Anthropic). Now the service holds no provider key at all (the stack's service process gets
none in its environment); Envoy reads the key from its own file and injects it on the provider
cluster, so the provider still receives it through the gateway.
"""

from __future__ import annotations

import json

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from testing.stack import Stack
from tests.fake_provider import FakeProvider
from tests.stack_fixtures import flush_store_fixture, provider_fixture, stack_fixture  # noqa: F401

pytestmark = pytest.mark.envoy

USD = 1_000_000
SECRETS = tuple(Stack.PROVIDER_ENV.values())


def direct_check(stack: Stack, path: str, key_header: str, body: dict[str, object]) -> bytes:
    """A Check sent straight to the service's gRPC port, as an attacker holding a kt_ key would."""
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method = "POST"
    http.path = path
    http.headers.update(
        {
            key_header: "Bearer kt_cg_support_prod"
            if key_header == "authorization"
            else "kt_cg_support_prod",
            "content-type": "application/json",
        }
    )
    http.raw_body = json.dumps(body).encode()
    target = f"{stack.cfg.gateway.authz_host}:{stack.cfg.gateway.authz_port}"
    with grpc.insecure_channel(target) as channel:
        response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(request, timeout=5)
    return bytes(response.SerializeToString())


@pytest.mark.parametrize(
    ("path", "key_header", "body"),
    [
        (
            "/v1/chat/completions",
            "authorization",
            {
                "model": "gpt-4o-mini",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            },
        ),
        (
            "/v1/messages",
            "x-api-key",
            {
                "model": "claude-sonnet-4",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            },
        ),
    ],
    ids=["openai", "anthropic"],
)
def test_direct_check_never_returns_a_provider_credential(
    stack: Stack, path: str, key_header: str, body: dict[str, object]
) -> None:
    stack.fund("team_support", USD)
    raw = direct_check(stack, path, key_header, body)
    assert b"x-keeptrusts-provider" in raw  # the Check allowed it: the attack reached its goal
    for secret in SECRETS:
        assert secret.encode() not in raw


@pytest.mark.parametrize("anthropic", [False, True], ids=["openai", "anthropic"])
def test_envoy_injects_the_provider_credential_from_its_own_file(
    stack: Stack, provider: FakeProvider, anthropic: bool
) -> None:
    stack.fund("team_engineering", USD)
    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    model = "claude-sonnet-4" if anthropic else "gpt-4o-mini"
    body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = stack.post(path, body, anthropic_style=anthropic)
    assert status == 200, raw
    seen = provider.last().headers
    if anthropic:
        assert seen["x-api-key"] == Stack.PROVIDER_ENV["KT_TEST_ANTHROPIC_KEY"]
        assert "authorization" not in seen
    else:
        assert seen["authorization"] == "Bearer " + Stack.PROVIDER_ENV["KT_TEST_OPENAI_KEY"]
        assert "x-api-key" not in seen
    assert "kt_cg_engineering_prod" not in json.dumps(seen)
