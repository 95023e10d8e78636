"""Team leads' commands, through the wallet REST API (KEEPTRUSTS_API_URL + KEEPTRUSTS_API_TOKEN,
a `team:<team_id>` token; billing for the decisions):

    keeptrusts-authz team-allocate --team team_engineering --user alice --amount 50
    keeptrusts-authz team-reclaim  --team team_engineering --user alice --amount 10
    keeptrusts-authz topup-request --team team_engineering --amount 200 --description "Q1 evals"
    keeptrusts-authz topups [--team T] [--status pending|approved|denied]
    keeptrusts-authz topup-approve tu_... [--reason R]     (billing)
    keeptrusts-authz topup-deny    tu_... [--reason R]     (billing)

Exit codes as the other money commands: 0 ok, 2 bad input / auth, 3 unreachable, 4 refused
(not found, insufficient funds, conflict).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from typing import Any

from keeptrusts_authz.cli.api_client import (
    API_TOKEN_ENV,
    API_URL_ENV,
    EXIT_BAD_INPUT,
    EXIT_OK,
    ApiClient,
    ApiError,
    api_url,
)


def _client() -> ApiClient | None:
    base = api_url()
    token = os.environ.get(API_TOKEN_ENV, "").strip()
    if base is None or not token:
        print(
            f"error: team commands go through the wallet API: set {API_URL_ENV} and "
            f"{API_TOKEN_ENV} (a team:<team_id> token)",
            file=sys.stderr,
        )
        return None
    return ApiClient(base, token)


def _team(value: str) -> str:
    return urllib.parse.quote(value.removeprefix("team:"), safe="")


def _print(args: argparse.Namespace, res: dict[str, Any], summary: str) -> None:
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        print(summary)


def _move(client: ApiClient, args: argparse.Namespace) -> int:
    op = "allocate" if args.command == "team-allocate" else "reclaim"
    body: dict[str, Any] = {"user_id": args.user.removeprefix("user:"), "amount": args.amount}
    if args.currency:
        body["currency"] = args.currency
    else:
        body["currency"] = client.request("GET", "/v1/wallets").get("currency", "")
    if args.description:
        body["description"] = args.description
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    res = client.request("POST", f"/v1/wallets/teams/{_team(args.team)}/{op}", body, headers)
    lines = [f"{op} {res.get('amount', args.amount)} {res.get('currency', '')} by {res['actor']}"]
    lines += [f"  {w}: balance {b}" for w, b in sorted(res.get("balances", {}).items())]
    _print(args, res, "\n".join(lines))
    return EXIT_OK


def _request(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"amount": args.amount, "description": args.description or ""}
    body["currency"] = args.currency or client.request("GET", "/v1/wallets").get("currency", "")
    res = client.request("POST", f"/v1/wallets/teams/{_team(args.team)}/topups", body)
    _print(args, res, f"top-up {res['id']} for {res['team_id']}: {res['amount']} ({res['status']})")
    return EXIT_OK


def _list(client: ApiClient, args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("team_id", args.team), ("status", args.status)) if v}
    path = "/v1/wallets/topups" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    res = client.request("GET", path)
    rows = res.get("topups", [])
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
        return EXIT_OK
    if not rows:
        print("no top-ups")
    for t in rows:
        decided = f" by {t['decided_by']}" if t.get("decided_by") else ""
        print(
            f"{t['id']}  {t['team_id']}  {t['amount']} {t.get('currency', '')}  "
            f"{t['status']}{decided}  requested by {t['requested_by']}"
        )
    return EXIT_OK


def _decide(client: ApiClient, args: argparse.Namespace) -> int:
    verb = "approve" if args.command == "topup-approve" else "deny"
    topup = urllib.parse.quote(args.topup_id, safe="")
    body = {"reason": args.reason} if args.reason else {}
    res = client.request("POST", f"/v1/wallets/topups/{topup}:{verb}", body)
    _print(args, res, f"top-up {res['id']}: {res['status']} by {res['decided_by']}")
    return EXIT_OK


_HANDLERS = {
    "team-allocate": _move,
    "team-reclaim": _move,
    "topup-request": _request,
    "topups": _list,
    "topup-approve": _decide,
    "topup-deny": _decide,
}


def _run(args: argparse.Namespace) -> int:
    client = _client()
    if client is None:
        return EXIT_BAD_INPUT
    try:
        return _HANDLERS[args.command](client, args)
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def register(subparsers: Any) -> None:
    for name, text in (
        ("team-allocate", "team lead: fund one of the team's users from the team wallet"),
        ("team-reclaim", "team lead: return a user's available funds to the team wallet"),
    ):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("--team", required=True, metavar="TEAM_ID")
        p.add_argument("--user", required=True, metavar="USER_ID")
        p.add_argument("--amount", required=True)
        p.add_argument("--currency")
        p.add_argument("--description", default="")
        p.add_argument("--idempotency-key")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=_run)
    p = subparsers.add_parser("topup-request", help="team lead: ask billing for more budget")
    p.add_argument("--team", required=True, metavar="TEAM_ID")
    p.add_argument("--amount", required=True)
    p.add_argument("--currency")
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)
    p = subparsers.add_parser("topups", help="list top-up requests (a team token: its own)")
    p.add_argument("--team", metavar="TEAM_ID")
    p.add_argument("--status", choices=("pending", "approved", "denied"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)
    for name, text in (
        ("topup-approve", "billing: approve a top-up (allocated from the org pool once)"),
        ("topup-deny", "billing: deny a top-up"),
    ):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("topup_id", metavar="TOPUP_ID")
        p.add_argument("--reason", default="")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=_run)


__all__ = ["register"]
