"""GET /v1/reports/chargeback through the real Envoy (transcoder, google.api.HttpBody) to the real
service: the report's own bytes and content type, the same CSV as `keeptrusts-authz report`, the
auth matrix and JSON 400s naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.api.conftest import TOKENS, Api

pytestmark = pytest.mark.envoy

PATH = "/v1/reports/chargeback"
CHAT = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _period() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@pytest.fixture
def traffic(api: Api) -> Api:
    """Funding moves and settled LLM spend in the current month."""
    api.fund("team_engineering", "100")
    api.ok(
        "POST",
        "/v1/wallets/allocate",
        {"team_id": "team_support", "amount": "20", "currency": "USD"},
    )
    api.ok(
        "POST",
        "/v1/wallets/transfer",
        {"from_team_id": "team_engineering", "to_team_id": "team_support", "amount": "5",
         "currency": "USD"},
    )  # fmt: skip
    for key, usage in (("kt_cg_engineering_prod", "1200,300"), ("kt_cg_support_prod", "50,7")):
        status, _, raw = api.stack.post(
            "/v1/chat/completions", CHAT, key=key, headers={"x-fake-usage": usage}
        )
        assert status == 200, raw
    api.stack.wait_settled("team:team_engineering")
    api.stack.wait_settled("team:team_support")
    return api


def _cli_report(api: Api, *args: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KEEPTRUSTS_API_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", "keeptrusts_authz.cli.main", "report",
         "--config", str(api.stack.config_path), *args],
        capture_output=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_csv_is_the_cli_report_with_its_content_type(traffic: Api) -> None:
    res = traffic.call("GET", f"{PATH}?period={_period()}&format=csv", role="viewer")
    assert res.status == 200, res.raw
    assert res.headers["content-type"] == "text/csv; charset=utf-8"
    assert not any(h.startswith("grpc-") for h in res.headers), res.headers
    lines = res.raw.decode().splitlines()
    assert lines[0].startswith("team,allocated,")
    totals = lines[-1].split(",")
    assert totals[0] == "TOTAL"
    header = lines[0].split(",")
    assert totals[header.index("requests")] == "2"
    assert float(totals[header.index("spent")]) > 0
    # byte for byte what finance gets from the CLI (same ledger, same renderer)
    assert res.raw == _cli_report(traffic, "--period", _period(), "--format", "csv")
    # the default format is csv, and group_by / from+to pass through
    default = traffic.call("GET", f"{PATH}?period={_period()}", role="billing")
    assert default.status == 200 and default.raw == res.raw
    today = datetime.now(UTC).date().isoformat()
    by_model = traffic.call(
        "GET", f"{PATH}?from={today}&to={today}&format=csv&group_by=model", role="billing"
    )
    assert by_model.status == 200, by_model.raw
    assert by_model.raw == _cli_report(
        traffic, "--from", today, "--to", today, "--group-by", "model"
    )
    assert by_model.raw.decode().splitlines()[1].startswith("gpt-4o-mini,")


def test_json_and_html_bodies_and_content_types(traffic: Api) -> None:
    res = traffic.call("GET", f"{PATH}?period={_period()}&format=json&group_by=team")
    assert res.status == 200, res.raw
    assert res.headers["content-type"] == "application/json"
    doc = res.json
    assert doc["period"] == _period() and doc["reconciled"] is True
    assert {r["team"] for r in doc["rows"]} >= {"team_engineering", "team_support"}
    assert doc["totals"]["requests"] == 2

    html = traffic.call("GET", f"{PATH}?period={_period()}&format=html", role="viewer")
    assert html.status == 200, html.raw
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    text = html.raw.decode()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text

    class Tables(HTMLParser):
        ids: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("table", "svg"):
                self.ids.append(dict(attrs).get("id") or "")

    parser = Tables()
    parser.feed(text)
    assert {"chargeback", "daily-spend"} <= set(parser.ids)


def test_a_report_over_a_mebibyte_comes_through_whole(api: Api) -> None:
    """The transcoder buffers a unary HttpBody: its limit is raised above Envoy's 1 MiB default."""
    api.fund(None, credit="10000")

    async def allocate(w: Any) -> None:
        for i in range(6000):
            await w.allocate(
                f"user:user_{i:05d}_of_a_large_org",
                1_000_000,
                "USD",
                "",
                "test",
                team="team_engineering",
            )

    api.stack.wallets(allocate)
    res = api.call("GET", f"{PATH}?period={_period()}&format=html&group_by=user", role="viewer")
    assert res.status == 200, res.raw[:300]
    assert len(res.raw) > 1024 * 1024
    assert res.raw.rstrip().endswith(b"</html>") and b"user_05999_of_a_large_org" in res.raw


def _error(res: Any, status: int) -> dict[str, Any]:
    assert res.status == status, (res.status, res.raw)
    assert res.headers["content-type"].startswith("application/json")
    assert not any(h.startswith("grpc-") for h in res.headers), res.headers
    body: dict[str, Any] = json.loads(res.raw)
    assert set(body) == {"error"} and body["error"]["type"] and body["error"]["message"]
    return dict(body["error"])


def _field(body: dict[str, Any]) -> str | None:
    field = body.get("field")
    return str(field) if field else None


def test_auth_matrix(traffic: Api) -> None:
    url = f"{PATH}?period={_period()}&format=csv"
    for role in ("billing", "viewer", "multi"):
        res = traffic.call("GET", url, role=role)
        assert res.status == 200, (role, res.raw)
        assert res.headers["content-type"].startswith("text/csv")
    # a team-only token: the report covers the whole organization -> 403, nothing leaked
    denied = _error(traffic.call("GET", url, role="team"), 403)
    assert denied["type"] == "permission_denied" and "viewer or billing" in denied["message"]
    assert "team_support" not in json.dumps(denied)
    for headers in ({}, {"Authorization": "Bearer wrong-token"},
                    {"Authorization": TOKENS["billing"]}):  # fmt: skip
        res = traffic.call("GET", url, role=None, headers=headers)
        assert _error(res, 401)["type"] == "unauthenticated"


BAD = [
    ("period_format", "period=2026-13", "period"),
    ("period_words", "period=november", "period"),
    ("period_missing", "format=csv", "period"),
    ("period_no_such_week", "period=2027-W53", "period"),
    ("period_quarter", "period=2027-Q5", "period"),
    ("format", "period=2026-01&format=xlsx", "format"),
    ("group_by", "period=2026-01&group_by=planet", "group_by"),
    ("from_alone", "from=2026-01-01", "to"),
    ("to_alone", "to=2026-01-01", "from"),
    ("from_format", "from=2026-1-1&to=2026-01-02", "from"),
    ("to_before_from", "from=2026-01-05&to=2026-01-01", "to"),
    ("outside_period", "period=2026-02&from=2026-01-05&to=2026-02-01", "from"),
]


@pytest.mark.parametrize(("query", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_query_is_a_json_400_naming_the_field(api: Api, query: str, field: str) -> None:
    err = _error(api.call("GET", f"{PATH}?{query}", role="viewer"), 400)
    assert err["type"] == "invalid_input"
    assert _field(err) == field, err
    assert err["message"].startswith(f"{field}:"), err


@pytest.mark.parametrize("period", ["2027-Q1", "2026-W53", "2026-12-01", "2027"])
def test_every_period_id_of_the_calendar(api: Api, period: str) -> None:
    res = api.call("GET", f"{PATH}?period={period}&format=json", role="viewer")
    assert res.status == 200, res.raw
    assert res.json["period"] == period


def test_unknown_parameter_wrong_method_and_path_are_json(api: Api) -> None:
    assert _error(api.call("GET", f"{PATH}?period=2026-01&bogus=1"), 400)["type"] == "invalid_input"
    assert _error(api.call("POST", PATH, {}), 405)["type"] == "method_not_allowed"
    assert _error(api.call("GET", "/v1/reports/showback"), 404)["type"] == "not_found"
