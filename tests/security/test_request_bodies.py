"""L3/L4 (request bodies): duplicate JSON keys (`{"model":"o1","model":"gpt-4.1-nano"}`, two
`max_tokens`) were priced by the last copy and forwarded as sent, so a provider or proxy that keeps
the first copy served something else (and `allowed_models` was bypassed the same way); UTF-16
bodies and NaN/Infinity were accepted. Through the real Envoy and the real Check, each is now a
400 with a specific JSON error, and nothing is reserved or forwarded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider
from tests.stack_fixtures import provider_fixture  # noqa: F401

pytestmark = pytest.mark.envoy

USD = 1_000_000
MSG = '"messages":[{"role":"user","content":"hi"}]'
PLAIN = '{"model":"gpt-4o-mini","max_tokens":8,' + MSG + "}"

BAD: dict[str, tuple[bytes, str, str, str | None]] = {
    # name: (body, key, expected error type, the key the error must name)
    "duplicate_model": (
        ('{"model":"o1","model":"gpt-4o-mini","max_tokens":8,' + MSG + "}").encode(),
        "kt_cg_engineering_prod",
        "duplicate_key",
        "model",
    ),
    "duplicate_model_past_allowed_models": (
        (
            '{"model":"gpt-4o","model":"claude-3-5-haiku-latest","max_tokens":8,' + MSG + "}"
        ).encode(),
        "kt_cg_legal_prod",
        "duplicate_key",
        "model",
    ),
    "duplicate_max_tokens": (
        ('{"model":"gpt-4o-mini","max_tokens":100000,"max_tokens":1,' + MSG + "}").encode(),
        "kt_cg_engineering_prod",
        "duplicate_key",
        "max_tokens",
    ),
    "duplicate_nested_key": (
        b'{"model":"gpt-4o-mini","max_tokens":8,'
        b'"messages":[{"role":"user","content":"a","content":"b"}]}',
        "kt_cg_engineering_prod",
        "duplicate_key",
        "content",
    ),
    "nan": (
        ('{"model":"gpt-4o-mini","temperature":NaN,"max_tokens":8,' + MSG + "}").encode(),
        "kt_cg_engineering_prod",
        "invalid_number",
        None,
    ),
    "infinity": (
        ('{"model":"gpt-4o-mini","top_p":-Infinity,"max_tokens":8,' + MSG + "}").encode(),
        "kt_cg_engineering_prod",
        "invalid_number",
        None,
    ),
    "overflowing_number": (
        ('{"model":"gpt-4o-mini","temperature":1e999,"max_tokens":8,' + MSG + "}").encode(),
        "kt_cg_engineering_prod",
        "invalid_number",
        None,
    ),
    "utf16_with_bom": (PLAIN.encode("utf-16"), "kt_cg_engineering_prod", "invalid_encoding", None),
    "utf16le_without_bom": (
        PLAIN.encode("utf-16-le"),
        "kt_cg_engineering_prod",
        "invalid_encoding",
        None,
    ),
    "utf8_bom": (
        b"\xef\xbb\xbf" + PLAIN.encode(),
        "kt_cg_engineering_prod",
        "invalid_encoding",
        None,
    ),
    "not_utf8": (
        PLAIN.replace("hi", "h\udcffi").encode("utf-8", "surrogateescape"),
        "kt_cg_engineering_prod",
        "invalid_encoding",
        None,
    ),
}


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, provider: FakeProvider) -> Iterator[Stack]:
    with Stack(stack_config(redis_server.url, provider.url)) as s:
        s.fund("team_engineering", 10 * USD)
        s.fund("team_legal", 10 * USD)
        yield s


@pytest.fixture(autouse=True)
def _flush(redis_server: RedisServer, stack: Stack) -> None:
    empty_keeping_epochs(redis_server.url)
    stack.fund("team_engineering", 10 * USD)
    stack.fund("team_legal", 10 * USD)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_body_is_refused_by_the_check_and_changes_nothing(
    stack: Stack, provider: FakeProvider, case: str
) -> None:
    body, key, error_type, named = BAD[case]
    provider.clear()
    ledger = len(stack.wallets(lambda w: w.ledger(count=100)))
    status, _, raw = stack.post("/v1/chat/completions", body, key=key)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == error_type, error
    if named is not None:
        assert error["key"] == named and repr(named) in error["message"]
    assert provider.requests == []
    assert len(stack.wallets(lambda w: w.ledger(count=100))) == ledger  # nothing reserved
    for team in ("team_engineering", "team_legal"):
        assert stack.wallet(f"team:{team}").reserved == 0


def test_the_same_body_without_the_duplicate_is_served(stack: Stack) -> None:
    status, _, raw = stack.post("/v1/chat/completions", PLAIN.encode())
    assert status == 200, raw
