"""`user_source: jwt`: the user id comes from a JWT that Envoy's jwt_authn filter verified (local
JWKS here; tokens signed in the test with RS256), copied into the issuer's claim header by Envoy
after any client-sent copy was removed. The real Envoy, `serve`, Redis and the fake provider.

Closes C3 for groups whose callers hold user tokens: the key holder can no longer pick the user.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keeptrusts_authz.config import parse_config
from keeptrusts_authz.envoy_config.render import render_envoy_yaml
from testing.envoy_harness import envoy_validate
from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import GROUPS, Stack, stack_config
from tests.fake_provider import FakeProvider

pytestmark = pytest.mark.envoy

ISSUER = "https://sso.test.example"
AUDIENCE = "keeptrusts-gateway"
KID = "test-key-1"
CLAIM_HEADER = "x-keeptrusts-jwt-user-corp-sso"
KEY = "kt_cg_engineering_prod"
BODY = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Signer:
    def __init__(self, kid: str = KID) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, str]:
        pub = self.key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": _int_b64(pub.n),
            "e": _int_b64(pub.e),
        }

    def token(self, sub: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
        payload.update(claims)
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
        ).encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + _b64(signature)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


def _jwt_config(redis_url: str, provider_url: str, jwks_file: str) -> dict[str, Any]:
    groups = [dict(g) for g in GROUPS]
    groups[0] = {**groups[0], "user_source": "jwt", "jwt_issuer": "corp_sso"}
    return stack_config(
        redis_url,
        provider_url,
        consumer_groups=groups,
        jwt_issuers=[
            {
                "name": "corp_sso",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "jwks_file": jwks_file,
            }
        ],
    )


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, signer: Signer) -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="kt-jwks-"))
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}), encoding="utf-8")
    with FakeProvider() as fake, Stack(_jwt_config(redis_server.url, fake.url, str(jwks))) as s:
        yield s


def _fund(stack: Stack) -> None:
    # The module's service keeps running across tests: empty Redis without losing its epoch.
    empty_keeping_epochs(stack.cfg.redis.url)

    async def go(w: Any) -> None:
        await w.credit(100_000_000, "USD", "seed", "test")
        for team in ("team_engineering", "team_support"):
            await w.allocate(f"team:{team}", 10_000_000, "USD", "seed", "test")
        await w.allocate("user:alice", 5_000_000, "USD", "seed", "test", team="team_engineering")
        await w.allocate("user:bob", 5_000_000, "USD", "seed", "test", team="team_engineering")

    stack.wallets(go)


def _post(stack: Stack, headers: dict[str, str], key: str = KEY) -> tuple[int, dict[str, Any]]:
    status, _, raw = stack.post("/v1/chat/completions", BODY, key=key, headers=headers)
    return status, json.loads(raw)


def _spent(stack: Stack, wallet: str) -> int:
    return int(stack.wait_settled(wallet).spent_total)


def test_rendered_jwt_filters_pass_envoy_validate(tmp_path: Path, signer: Signer) -> None:
    """Local JWKS (file and inline) and a remote JWKS URI (with its own TLS cluster)."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}), encoding="utf-8")
    base = _jwt_config("redis://127.0.0.1:6379/0", "http://127.0.0.1:9", str(jwks))
    base["jwt_issuers"] += [
        {"name": "inline_idp", "issuer": "https://inline", "jwks_inline": jwks.read_text()},
        {"name": "remote_idp", "issuer": "https://idp", "jwks_uri": "https://idp.example/jwks"},
    ]
    rendered = render_envoy_yaml(parse_config(base))
    assert "envoy.filters.http.jwt_authn" in rendered and "jwks_remote_idp" in rendered
    hcm = yaml.safe_load(rendered)["static_resources"]["listeners"][0]["filter_chains"][0]
    names = [f["name"] for f in hcm["filters"][0]["typed_config"]["http_filters"]]
    assert names[:4] == [
        "keeptrusts.check_id",
        "keeptrusts.strip_user_claims",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.ext_authz",
    ]
    envoy_validate(rendered)


def test_verified_token_names_the_user(stack: Stack, signer: Signer) -> None:
    _fund(stack)
    status, body = _post(stack, {"x-keeptrusts-user-token": "Bearer " + signer.token("alice")})
    assert status == 200, body
    assert _spent(stack, "user:alice") > 0
    # The bare token (no Bearer prefix) is accepted as well.
    status, body = _post(stack, {"x-keeptrusts-user-token": signer.token("bob")})
    assert status == 200, body
    assert _spent(stack, "user:bob") > 0


@pytest.mark.parametrize(
    "case", ["missing", "other_key", "expired", "wrong_audience", "wrong_issuer", "garbage"]
)
def test_without_a_verified_token_nothing_is_spent(stack: Stack, signer: Signer, case: str) -> None:
    _fund(stack)
    tokens = {
        "missing": None,
        "other_key": Signer().token("alice"),
        "expired": signer.token("alice", exp=int(time.time()) - 600),
        "wrong_audience": signer.token("alice", aud="someone-else"),
        "wrong_issuer": signer.token("alice", iss="https://evil.example"),
        "garbage": "not-a-jwt",
    }
    headers = {"x-keeptrusts-user": "alice"}  # the plain header does not count for this group
    if tokens[case] is not None:
        headers["x-keeptrusts-user-token"] = f"Bearer {tokens[case]}"
    status, body = _post(stack, headers)
    assert status == 401, body
    assert body["error"]["type"] == "invalid_user_token"
    assert _spent(stack, "user:alice") == 0
    assert _spent(stack, "team:team_engineering") == 0


def test_a_client_sent_claim_header_is_removed_before_verification(
    stack: Stack, signer: Signer
) -> None:
    _fund(stack)
    status, body = _post(stack, {CLAIM_HEADER: "alice"})
    assert status == 401, body  # no token: the forged claim header never reached the Check
    status, body = _post(
        stack, {CLAIM_HEADER: "alice", "x-keeptrusts-user-token": signer.token("bob")}
    )
    assert status == 200, body  # the token's user, not the forged header's
    assert _spent(stack, "user:bob") > 0
    assert _spent(stack, "user:alice") == 0


def test_header_groups_keep_the_trusted_upstream_header(stack: Stack, signer: Signer) -> None:
    """support keeps user_source: header (the default): the user header decides, any token is
    irrelevant to it, and a user of engineering stays out of its reach."""
    _fund(stack)
    status, body = _post(stack, {"x-keeptrusts-user": "carol"}, key="kt_cg_support_prod")
    assert status == 200, body
    status, body = _post(
        stack,
        {"x-keeptrusts-user-token": signer.token("alice"), "x-keeptrusts-user": "alice"},
        key="kt_cg_support_prod",
    )
    assert status == 403, body
    assert body["error"]["type"] == "user_not_in_team"


def test_remote_jwks_uri_is_fetched_by_envoy(redis_server: RedisServer, signer: Signer) -> None:
    """Production shape: the JWKS comes from the issuer's URI (here a local HTTP server); Envoy
    fetches and caches it through its own `jwks_<issuer>` cluster."""
    import http.server
    import threading

    jwks = json.dumps({"keys": [signer.jwk()]}).encode()
    fetched: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with FakeProvider() as fake:
            cfg = _jwt_config(redis_server.url, fake.url, "unused")
            del cfg["jwt_issuers"][0]["jwks_file"]
            cfg["jwt_issuers"][0]["jwks_uri"] = f"http://127.0.0.1:{server.server_port}/jwks.json"
            with Stack(cfg) as stack:
                _fund(stack)
                ok = {"x-keeptrusts-user-token": "Bearer " + signer.token("alice")}
                status, body = _post(stack, ok)
                assert status == 200, body
                assert _spent(stack, "user:alice") > 0
                forged = {"x-keeptrusts-user-token": "Bearer " + Signer().token("alice")}
                assert _post(stack, forged)[0] == 401
        assert "/jwks.json" in fetched
    finally:
        server.shutdown()
        server.server_close()
