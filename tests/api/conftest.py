"""One full stack for the wallet API tests: real Redis, the real `keeptrusts-authz serve`
subprocess (gRPC with the wallet API), the real Envoy rendered from the same config, and the fake
provider. Redis is flushed before each test (`api` fixture)."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from testing.redis_server import RedisServer, empty_keeping_epochs
from testing.stack import GROUPS, Stack, stack_config
from tests.fake_provider import FakeProvider

TOKENS = {
    "billing": "kt_admin_billing_7f3c",
    "viewer": "kt_admin_viewer_91ab",
    "team": "kt_admin_eng_lead_22d0",
    "multi": "kt_admin_multi_5e5e",
    "support": "kt_admin_support_lead_9c1d",
}
TOKEN_NAMES = {
    "billing": "finance",
    "viewer": "auditor",
    "team": "eng-lead",
    "multi": "ops",
    "support": "support-lead",
}
HOLD_TIMEOUT = 3.0
HOLD_KEY = "kt_cg_research_prod"


def _admin_tokens() -> list[dict[str, Any]]:
    roles = {
        "billing": ["billing"],
        "viewer": ["viewer"],
        "team": ["team:team_engineering"],
        "multi": ["viewer", "team:team_support"],
        "support": ["team:team_support"],
    }
    return [
        {
            "name": TOKEN_NAMES[r],
            "sha256": hashlib.sha256(TOKENS[r].encode()).hexdigest(),
            "roles": roles[r],
        }
        for r in TOKENS
    ]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Api:
    def __init__(self, stack: Stack, redis_url: str) -> None:
        self.stack = stack
        self.url = stack.url
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.org = stack.cfg.organization.id

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        role: str | None = "billing",
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes | str):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if role is not None:
            req.add_header("Authorization", f"Bearer {TOKENS[role]}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Response(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
                )
        except urllib.error.HTTPError as err:
            return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def ok(self, method: str, path: str, body: Any = None, role: str = "billing") -> Any:
        res = self.call(method, path, body, role)
        assert res.status == 200, (res.status, res.raw)
        return res.json

    # -- store-side views for assertions ---------------------------------------------------

    def ledger(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.redis.xrange(f"kt:{{{self.org}}}:ledger")]

    def wallet_hashes(self) -> dict[str, dict[str, str]]:
        ids = self.redis.smembers(f"kt:{{{self.org}}}:wallets")
        return {w: self.redis.hgetall(f"kt:{{{self.org}}}:w:{w}") for w in sorted(ids)}

    def snapshot(self) -> tuple[int, dict[str, dict[str, str]]]:
        return len(self.ledger()), self.wallet_hashes()

    def fund(self, team: str | None = None, amount: str = "1000", credit: str = "5000") -> None:
        self.ok("POST", "/v1/wallets/credit", {"amount": credit, "currency": "USD"})
        if team:
            self.ok(
                "POST",
                "/v1/wallets/allocate",
                {"team_id": team, "amount": amount, "currency": "USD"},
            )


@contextmanager
def admin_stack(redis_url: str, hold_timeout: float) -> Iterator[Stack]:
    """The wallet-API stack (its one definition: tests/api and tests/console start it): the
    shared groups plus `research` (HOLD_KEY, on_insufficient hold), the admin tokens of TOKENS,
    the fake provider, and the given hold timeout."""
    groups = [
        *GROUPS,
        {
            "name": "research",
            "api_key": HOLD_KEY,
            "wallet_team_id": "team_research",
            "on_insufficient": "hold",
        },
    ]
    with FakeProvider() as fake:
        cfg = stack_config(
            redis_url,
            fake.url,
            consumer_groups=groups,
            admin={"tokens": _admin_tokens()},
            enforcement={"hold_timeout_seconds": hold_timeout},
        )
        with Stack(cfg) as stack:
            yield stack


@pytest.fixture(scope="package")
def api_stack(redis_server: RedisServer) -> Iterator[Stack]:
    with admin_stack(redis_server.url, HOLD_TIMEOUT) as stack:
        yield stack


@contextmanager
def fresh_api(stack: Stack, redis_url: str) -> Iterator[Api]:
    """An Api client on `stack` over an emptied Redis (the stack's service keeps running across
    tests: empty it without losing its epoch); its Redis connection closed afterwards."""
    empty_keeping_epochs(redis_url)
    client = Api(stack, redis_url)
    try:
        yield client
    finally:
        client.redis.close()


@pytest.fixture
def api(api_stack: Stack, redis_server: RedisServer) -> Iterator[Api]:
    with fresh_api(api_stack, redis_server.url) as client:
        yield client
