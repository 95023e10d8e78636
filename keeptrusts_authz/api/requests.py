"""Strict request parsing for the wallet API.

REST requests arrive with the whole JSON body in the `body` Struct field (see wallet.proto: Envoy's
transcoder would silently drop unknown fields of a typed message); gRPC callers use the typed
fields. Both paths end in the same plain dict, validated here: unknown fields, wrong JSON types,
bad amounts and bad ids are InvalidInput naming the field, before anything reaches the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import Message

from keeptrusts_authz.errors import InvalidInput
from keeptrusts_authz.money import AmountError, parse_amount
from keeptrusts_authz.wallets.models import IDEMPOTENCY_KEY, parse_wallet_id

Kind = Literal["str", "amount"]
IDEMPOTENCY_HEADER = "idempotency-key"


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", {"field": field})


def fields_of(msg: Message, spec: Mapping[str, Kind]) -> dict[str, Any]:
    """The request's fields as plain JSON values: the REST `body`, else the set typed fields."""
    typed: dict[str, Any] = {}
    for name, kind in spec.items():
        if kind == "amount":
            if msg.HasField(name):
                typed[name] = json_format.MessageToDict(getattr(msg, name))
        elif getattr(msg, name):
            typed[name] = getattr(msg, name)
    if not msg.HasField("body"):
        return typed
    if typed:
        raise _bad(next(iter(typed)), "set either the JSON body or the typed fields, not both")
    raw = json_format.MessageToDict(getattr(msg, "body"))  # noqa: B009 - any request type
    for key, value in raw.items():
        if key not in spec:
            raise _bad(key, f"unknown field (expected: {', '.join(sorted(spec))})")
        if spec[key] == "str" and not isinstance(value, str):
            raise _bad(key, f"must be a string, got {_json_type(value)}")
    return raw


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


def amount_micros(fields: Mapping[str, Any], field: str = "amount") -> int:
    if field not in fields:
        raise _bad(field, "is required (a decimal number or string in currency units)")
    value = fields[field]
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(field, "must be a finite number")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _bad(field, f"must be a decimal number or string, got {_json_type(value)}")
    try:
        return parse_amount(value, field=field)
    except AmountError as exc:
        raise InvalidInput(str(exc), {"field": field}) from None


def text(fields: Mapping[str, Any], field: str, *, required: bool = False) -> str:
    value = fields.get(field, "")
    if required and not value:
        raise _bad(field, "is required")
    return str(value)


def one_wallet(fields: Mapping[str, Any], team_field: str, user_field: str) -> str:
    """Exactly one of a team id and a user id -> wallet id `team:<id>` / `user:<id>`."""
    team, user = fields.get(team_field, ""), fields.get(user_field, "")
    if team and user:
        raise InvalidInput(
            f"{team_field}, {user_field}: give exactly one, not both", {"field": team_field}
        )
    if not team and not user:
        raise InvalidInput(
            f"{team_field}: one of {team_field} or {user_field} is required", {"field": team_field}
        )
    field, wallet_id = (team_field, f"team:{team}") if team else (user_field, f"user:{user}")
    try:
        parse_wallet_id(wallet_id)
    except InvalidInput:
        raise _bad(field, "must be 1-128 characters of [A-Za-z0-9_.-] (users also @+=)") from None
    return wallet_id


def wallet_id(value: str, field: str = "wallet_id") -> str:
    try:
        parse_wallet_id(value)
    except InvalidInput:
        raise _bad(field, "must be 'org', 'team:<team_id>' or 'user:<user_id>'") from None
    return value


def idempotency_key(metadata: Mapping[str, str], fields: Mapping[str, Any]) -> str | None:
    header = metadata.get(IDEMPOTENCY_HEADER, "").strip() or None
    body = str(fields.get("request_id", "")).strip() or None
    if header and body and header != body:
        raise _bad("request_id", "differs from the Idempotency-Key header")
    key = header or body
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise _bad(
            "request_id" if body else "Idempotency-Key", "1-128 characters of [A-Za-z0-9_.:-]"
        )
    return key


__all__ = ["amount_micros", "fields_of", "idempotency_key", "one_wallet", "text", "wallet_id"]
