"""The CLI's wallet commands through the wallet REST API (when KEEPTRUSTS_API_URL is set).

`keeptrusts-authz allocate --team team_engineering --amount 1200` then POSTs to
`$KEEPTRUSTS_API_URL/v1/wallets/allocate` with `Authorization: Bearer $KEEPTRUSTS_API_TOKEN`
(stdlib urllib only) instead of talking to Redis; without KEEPTRUSTS_API_URL the commands go
straight to the wallet layer. Same output as the direct path: the API answers with the documents
of wallets/views.py, which `--json` prints as they came and the tables render with cli/output.py;
the read commands `balance`, `ledger` (needs `--wallet`: the API lists one wallet's entries),
`tickets` and `report` go through the API too. Errors arrive as `{"error": {"type", "message",
...}}` and `--json` prints that document. Exit codes: 0 ok, 2 bad input / auth, 3 API or store
unreachable, 4 not found / insufficient funds / conflict.

Redirects are never followed: urllib would re-send the `Authorization` header (the admin token)
to wherever the `Location` points. A 3xx is an error naming the Location's host (exit 3); point
KEEPTRUSTS_API_URL at the real endpoint instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from keeptrusts_authz.cli import output

API_URL_ENV = "KEEPTRUSTS_API_URL"
API_TOKEN_ENV = "KEEPTRUSTS_API_TOKEN"
COMMANDS = ("credit", "allocate", "reclaim", "transfer", "balance", "ledger", "tickets", "report")
TIMEOUT = 30.0

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE, EXIT_REFUSED = 0, 2, 3, 4


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body

    @property
    def exit_code(self) -> int:
        if self.status in (404, 409):
            return EXIT_REFUSED
        if 400 <= self.status < 500:
            return EXIT_BAD_INPUT
        return EXIT_UNREACHABLE


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Do not follow: the 3xx reaches the caller as an HTTPError, the token is not re-sent."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects())


def _redirect_error(url: str, err: urllib.error.HTTPError) -> ApiError:
    location = (err.headers.get("Location") or "") if err.headers else ""
    target = urllib.parse.urlsplit(urllib.parse.urljoin(url, location)) if location else None
    where = f"redirects to {target.netloc or '?'}" if target else "answered a redirect"
    return ApiError(
        err.code,
        f"the wallet API at {url} {where} (HTTP {err.code}); redirects are not followed, so the "
        f"token is not sent there: set {API_URL_ENV} to the API's real address",
    )


def api_url(environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    url = env.get(API_URL_ENV, "").strip()
    return url.rstrip("/") or None


def handles(args: argparse.Namespace) -> bool:
    """True when this command should go through the API."""
    return api_url() is not None and getattr(args, "command", None) in COMMANDS


class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return json.loads(self.raw(method, path, body, headers) or b"{}")

    def raw(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with _OPENER.open(req, timeout=self.timeout) as resp:
                answer: bytes = resp.read()
                return answer
        except urllib.error.HTTPError as err:
            if 300 <= err.code < 400:
                raise _redirect_error(req.full_url, err) from None
            raw = err.read()
            try:
                payload = json.loads(raw)
                error = payload.get("error") if isinstance(payload, dict) else None
                message = str(error.get("message") if isinstance(error, dict) else payload)
            except (ValueError, AttributeError):
                payload, message = None, raw.decode("utf-8", "replace")[:300] or err.reason
            raise ApiError(err.code, message, payload) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ApiError(0, f"wallet API unreachable at {self.base_url}: {reason}") from None


def _target(args: argparse.Namespace, team: str, user: str, prefix: str = "") -> dict[str, str]:
    team_value, user_value = getattr(args, team, None), getattr(args, user, None)
    if team_value is not None:
        return {f"{prefix}team_id": str(team_value).removeprefix("team:")}
    if user_value is not None:
        return {f"{prefix}user_id": str(user_value).removeprefix("user:")}
    return {}


def _move_body(client: ApiClient, args: argparse.Namespace) -> dict[str, Any]:
    currency = args.currency
    if currency is None:  # default: the organization's currency, as the direct path does
        currency = client.request("GET", "/v1/wallets?scope=org").get("currency", "")
    return {"amount": str(args.amount), "currency": currency, "description": args.description}


def _print_move(args: argparse.Namespace, res: dict[str, Any], summary: str) -> None:
    if args.json:
        output.print_json(res)
        return
    output.print_move(res, summary)


def _wallet_id(team: str | None, user: str | None) -> str:
    return f"team:{team}" if team else f"user:{user}"


def _move(client: ApiClient, args: argparse.Namespace) -> int:
    op = args.command
    body = _move_body(client, args)
    if op == "allocate" or op == "reclaim":
        body.update(_target(args, "team", "user"))
        if getattr(args, "user_team", None) and body.get("user_id"):
            body["team_id"] = args.user_team.removeprefix("team:")
    elif op == "transfer":
        body.update(_target(args, "from_team", "from_user", "from_"))
        body.update(_target(args, "to_team", "to_user", "to_"))
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    res = client.request("POST", f"/v1/wallets/{op}", body, headers)
    moved = f"{res.get('amount', args.amount)} {res.get('currency', '')}"
    wallet = _wallet_id(None if body.get("user_id") else body.get("team_id"), body.get("user_id"))
    summary = {
        "credit": f"credited {moved} to org",
        "allocate": f"allocated {moved} from org to {wallet}",
        "reclaim": f"reclaimed {moved} from {wallet} to org",
        "transfer": f"transferred {moved} from "
        f"{_wallet_id(body.get('from_team_id'), body.get('from_user_id'))} to "
        f"{_wallet_id(body.get('to_team_id'), body.get('to_user_id'))}",
    }[op]
    _print_move(args, res, summary + " (via the API)")
    return EXIT_OK


def _balance(client: ApiClient, args: argparse.Namespace) -> int:
    target = _target(args, "team", "user")
    if target:
        res = client.request("GET", f"/v1/wallets/balance?{urllib.parse.urlencode(target)}")
        output.print_json(res) if args.json else output.print_balance(res)
    else:
        res = client.request("GET", "/v1/wallets")
        output.print_json(res) if args.json else output.print_wallets(res)
    return EXIT_OK


def _ledger(client: ApiClient, args: argparse.Namespace) -> int:
    wallet = args.wallet
    if wallet is None:
        raise ApiError(
            400,
            "the wallet API lists one wallet's entries: pass --wallet (org, team:<id>, user:<id>)",
        )
    if wallet != "org" and ":" not in wallet:
        wallet = f"team:{wallet}"
    query = {"page_size": str(args.limit)}
    if args.before:
        query["page_token"] = args.before
    path = f"/v1/wallets/{urllib.parse.quote(wallet, safe=':')}/transactions"
    res = client.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
    output.print_json(res) if args.json else output.print_ledger(res, wallet)
    return EXIT_OK


def _tickets(client: ApiClient, args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("status", args.status), ("team_id", args.team)) if v}
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    res = client.request("GET", f"/v1/wallets/tickets{suffix}")
    output.print_json(res) if args.json else output.print_tickets(res)
    return EXIT_OK


def _report(client: ApiClient, args: argparse.Namespace) -> int:
    query = {
        k: v
        for k, v in (
            ("period", args.period),
            ("from", args.date_from),
            ("to", args.date_to),
            ("format", args.format),
            ("group_by", args.group_by),
        )
        if v
    }
    body = client.raw("GET", f"/v1/reports/chargeback?{urllib.parse.urlencode(query)}")
    if args.output:
        output.write_atomic(args.output, body)
        print(f"wrote {args.output} (via the API)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    base = api_url()
    assert base is not None
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    if not token:
        print(f"error: {API_TOKEN_ENV} is not set (needed with {API_URL_ENV})", file=sys.stderr)
        return EXIT_BAD_INPUT
    client = ApiClient(base, token)
    try:
        read = {"balance": _balance, "ledger": _ledger, "tickets": _tickets, "report": _report}
        if args.command in read:
            return read[args.command](client, args)
        return _move(client, args)
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if getattr(args, "json", False):
            body = exc.body if isinstance(exc.body, dict) and "error" in exc.body else None
            fallback = {
                "error": {"type": "api_error", "message": exc.message, "status": exc.status}
            }
            output.print_json(body or fallback)
        return exc.exit_code


__all__ = ["ApiClient", "ApiError", "api_url", "handles", "run"]
