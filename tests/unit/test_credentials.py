"""credentials: one Bearer parser and constant-time digest matcher (gateway keys, admin tokens)."""

from __future__ import annotations

import hashlib

import pytest

from keeptrusts_authz.api.auth import AdminAuth, Unauthenticated
from keeptrusts_authz.config.models import AdminToken
from keeptrusts_authz.credentials import DigestMatcher, bearer_token
from keeptrusts_authz.gateway.api_keys import presented_key


def _hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("  Bearer abc", "abc"),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("Bearerabc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_matcher_finds_the_digest_and_nothing_else() -> None:
    m = DigestMatcher([(_hex("k1"), "one"), (_hex("k2").upper(), "two")])
    assert m.match("k1") == "one"
    assert m.match("k2") == "two"  # stored digests are hex, any case
    assert m.match("k3") is None
    assert m.match("") is None and m.match(None) is None
    assert m.match("\udcff") is None  # undecodable input is hashed, never raises


def test_first_duplicate_wins() -> None:
    assert DigestMatcher([(_hex("k"), 1), (_hex("k"), 2)]).match("k") == 1


def test_gateway_and_admin_api_parse_bearer_the_same_way() -> None:
    auth = AdminAuth([AdminToken(name="ops", sha256=_hex("tok"), roles=["viewer"])])
    for header in ("Bearer tok", "bearer  tok ", "BEARER tok"):
        assert presented_key({"authorization": header}) == "tok"
        assert auth.authenticate({"authorization": header}).name == "ops"
    for header in ("Basic tok", "Bearer", "tok"):
        with pytest.raises(Unauthenticated):
            auth.authenticate({"authorization": header})
    assert presented_key({"authorization": "Basic tok", "x-api-key": " k "}) == "k"


def test_admin_token_length_is_bounded() -> None:
    long = "x" * 4097
    auth = AdminAuth([AdminToken(name="ops", sha256=_hex(long), roles=["viewer"])])
    with pytest.raises(Unauthenticated):
        auth.authenticate({"authorization": f"Bearer {long}"})
