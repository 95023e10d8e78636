"""One error shape for every wallet API answer through the real Envoy (issue 15 item 3):
`{"error": {"type", "message", ...}}`, the error schema in docs/schemas/, no transcoder or gRPC
text, and an unknown query parameter is a 400 naming it and the route's accepted ones."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.api import conftest
from tests.api.conftest import Api
from tests.api.test_resource_shapes import validate

pytestmark = pytest.mark.envoy
INTERNAL_TEXT = ("Could not find field", "keeptrusts.wallet.v1", "google.rpc", '"code"', "grpc")


def error_of(res: Any, status: int, error_type: str) -> dict[str, Any]:
    assert res.status == status, (res.status, res.raw)
    assert res.headers["content-type"].startswith("application/json"), res.headers
    assert not any(h.startswith("grpc-") or h == "x-keeptrusts-error" for h in res.headers)
    text = res.raw.decode()
    assert not any(t in text for t in INTERNAL_TEXT), text
    doc: dict[str, Any] = res.json
    validate(doc, "error")
    assert doc["error"]["type"] == error_type, doc
    assert res.headers.get("x-keeptrusts-reason") == error_type, res.headers
    return doc["error"]


def test_unknown_query_parameter_names_it_and_the_accepted_ones(api: Api) -> None:
    """The measured case: ?limit=2 answered the transcoder's `Could not find field "limit"`."""
    api.fund("team_engineering", "10")
    before = api.snapshot()
    res = api.call("GET", "/v1/wallets/team:team_engineering/transactions?limit=2")
    err = error_of(res, 400, "invalid_input")
    assert err["parameter"] == "limit" and err["accepted"] == ["page_size", "page_token"]
    assert "limit" in err["message"] and "page_size" in err["message"]
    err = error_of(api.call("GET", "/v1/wallets?scope=team&teams=x"), 400, "invalid_input")
    assert (err["parameter"], err["accepted"]) == ("teams", ["scope"])
    # a body route takes no query parameters at all
    res = api.call("POST", "/v1/wallets/credit?amount=5", {"amount": "1", "currency": "USD"})
    err = error_of(res, 400, "invalid_input")
    assert err["parameter"] == "amount" and err["accepted"] == []
    assert api.snapshot() == before
    # the accepted names still work
    ok = api.ok("GET", "/v1/wallets/team:team_engineering/transactions?page_size=1")
    assert len(ok["entries"]) == 1


def test_integer_parameter_with_a_non_integer_value(api: Api) -> None:
    res = api.call("GET", "/v1/wallets/org/transactions?page_size=two")
    assert error_of(res, 400, "invalid_input")["field"] == "page_size"


def test_service_errors_carry_type_and_field(api: Api) -> None:
    api.fund()
    before = api.snapshot()
    res = api.call("POST", "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "-1",
                                                     "currency": "USD"})  # fmt: skip
    assert error_of(res, 400, "invalid_input")["field"] == "amount"
    res = api.call("POST", "/v1/wallets/allocate", {"team_id": "team_engineering", "amount": "1",
                                                     "currency": "EUR"})  # fmt: skip
    assert error_of(res, 400, "currency_mismatch")["field"] == "currency"
    res = api.call("GET", "/v1/wallets/org/transactions?page_size=501")
    assert error_of(res, 400, "invalid_input")["field"] == "page_size"
    assert api.snapshot() == before


def test_malformed_json_body_is_the_same_shape_without_transcoder_text(api: Api) -> None:
    error_of(api.call("POST", "/v1/wallets/credit", b"{not json"), 400, "invalid_input")


@pytest.mark.parametrize(
    ("role", "headers", "status", "error_type"),
    [
        (None, {}, 401, "unauthenticated"),
        (None, {"Authorization": "Bearer wrong"}, 401, "unauthenticated"),
        ("viewer", None, 403, "permission_denied"),
    ],
)
def test_auth_errors(
    api: Api, role: str | None, headers: dict[str, str] | None, status: int, error_type: str
) -> None:
    res = api.call("POST", "/v1/wallets/credit", {"amount": "1", "currency": "USD"}, role=role,
                   headers=headers)  # fmt: skip
    error_of(res, status, error_type)


def test_not_found_method_and_conflict(api: Api) -> None:
    api.fund()
    error_of(api.call("GET", "/v1/wallets/balance?team_id=team_ghost"), 404, "unknown_wallet")
    error_of(api.call("GET", "/v1/wallets/nope/nope/nope"), 404, "not_found")
    error_of(api.call("GET", "/v1/reports/nope"), 404, "not_found")
    err = error_of(api.call("DELETE", "/v1/wallets/credit"), 405, "method_not_allowed")
    assert "POST" in err["message"]
    res = api.call("POST", "/v1/wallets/tickets/tk_000000000000000000000000:approve", {})
    error_of(res, 404, "unknown_ticket")
    body = {"team_id": "team_engineering", "amount": "1", "currency": "USD"}
    first = api.call("POST", "/v1/wallets/allocate", body, headers={"Idempotency-Key": "k"})
    assert first.status == 200
    res = api.call("POST", "/v1/wallets/allocate", {**body, "amount": "2"},
                   headers={"Idempotency-Key": "k"})  # fmt: skip
    error_of(res, 409, "conflict")


def test_service_down_is_503_in_the_same_shape(redis_server: RedisServer) -> None:
    """Envoy with no service behind it (its own stack: the package's service keeps running)."""
    cfg = stack_config(
        redis_server.url, "http://127.0.0.1:9", admin={"tokens": conftest._admin_tokens()}
    )
    with Stack(cfg, start_service=False) as stack:
        req = urllib.request.Request(stack.url + "/v1/wallets")
        req.add_header("Authorization", f"Bearer {conftest.TOKENS['billing']}")
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError("expected a 503")
        except urllib.error.HTTPError as err:
            headers = {k.lower(): v for k, v in err.headers.items()}
            res = conftest.Response(err.code, headers, err.read())
    error_of(res, 503, "unavailable")
