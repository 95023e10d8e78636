"""The CLI's wallet-API client never follows a redirect: the admin token must not be re-sent to the
Location (urllib's default handler would forward `Authorization`). A 3xx is an error naming the
Location's host; the redirect target is never contacted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keeptrusts_authz.cli.api_client import EXIT_UNREACHABLE, ApiClient, ApiError
from keeptrusts_authz.cli.main import main

TOKEN = "kt_admin_secret_token_4242"


@contextmanager
def _server(status: int, location: str | None) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server that answers every request with `status` (+ Location)."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = b'{"wallets": [], "currency": "USD"}' if status == 200 else b""
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_an_error_naming_the_host_and_the_token_is_not_resent(status: int) -> None:
    with _server(200, None) as (target, target_seen):
        # "localhost" so the message's host is distinguishable from the API's 127.0.0.1
        evil = target.replace("127.0.0.1", "localhost") + "/collect"
        with _server(status, evil) as (api, api_seen):
            client = ApiClient(api, TOKEN, timeout=5)
            with pytest.raises(ApiError) as caught:
                client.request("POST", "/v1/wallets/credit", {"amount": "1", "currency": "USD"})
        assert target_seen == [], "the redirect target must never be contacted"
    err = caught.value
    assert err.status == status
    port = target.rsplit(":", 1)[1]
    assert f"localhost:{port}" in err.message and "not followed" in err.message
    assert TOKEN not in err.message
    assert err.exit_code == EXIT_UNREACHABLE
    assert len(api_seen) == 1 and api_seen[0]["authorization"] == f"Bearer {TOKEN}"


def test_relative_location_is_named_too() -> None:
    with _server(302, "/elsewhere") as (api, seen), pytest.raises(ApiError) as caught:
        ApiClient(api, TOKEN, timeout=5).request("GET", "/v1/wallets")
    assert "redirects to " + api.removeprefix("http://") + " " in caught.value.message
    assert len(seen) == 1


def test_cli_reports_the_redirect_and_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _server(200, None) as (target, target_seen):
        with _server(307, target + "/v1/wallets") as (api, api_seen):
            monkeypatch.setenv("KEEPTRUSTS_API_URL", api)
            monkeypatch.setenv("KEEPTRUSTS_API_TOKEN", TOKEN)
            monkeypatch.delenv("KEEPTRUSTS_CONFIG", raising=False)
            assert main(["balance"]) == EXIT_UNREACHABLE
        assert target_seen == []
    err = capsys.readouterr().err
    assert "redirects to 127.0.0.1:" + target.rsplit(":", 1)[1] in err
    assert TOKEN not in err
    assert len(api_seen) == 1


def test_a_plain_200_still_works() -> None:
    with _server(200, None) as (api, seen):
        assert ApiClient(api, TOKEN, timeout=5).request("GET", "/v1/wallets") == {
            "wallets": [],
            "currency": "USD",
        }
    assert seen[0]["authorization"] == f"Bearer {TOKEN}"
