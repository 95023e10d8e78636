"""The one JSON shape of each wallet-API resource, whichever transport serves it.

`keeptrusts-authz <cmd> --json` straight against Redis, the same command through the wallet API
(`KEEPTRUSTS_API_URL`) and the REST API itself (`/v1/wallets/*`) all print the documents built
here: the servicer answers with their JSON bytes (google.api.HttpBody), the CLI prints them or
passes the API's answer through. The JSON Schemas in docs/schemas/ describe them and
tests/api/test_resource_shapes.py checks the three transports against them.

Conventions: every amount is a pair, `<name>` (decimal string in currency units, exact:
`format_micros`) and `<name>_micros` (integer micro-units); a figure that does not apply is
`null` in both; times are RFC 3339 UTC with milliseconds (`2026-12-01T10:00:00.000Z`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.wallets.burn import depletion_date
from keeptrusts_authz.wallets.cascade import cascade_for
from keeptrusts_authz.wallets.models import (
    LedgerEntry,
    OpResult,
    TicketRecord,
    TopUpRecord,
    Wallet,
)

Doc = dict[str, Any]

# Ledger fields that are not attributes of an entry (they have their own keys).
_CORE_FIELDS = frozenset(
    ("op", "wallet", "amount", "ts_ms", "actor", "description", "balance_after")
)
# Ledger attributes that hold micros: shown as a decimal plus `<name>_micros`.
_MICROS_ATTRIBUTES = frozenset(("reserved", "cost"))


def money_pair(name: str, micros: int | None) -> Doc:
    """`{name: "12.50", name_micros: 12500000}`; both null when the figure does not apply."""
    if micros is None:
        return {name: None, f"{name}_micros": None}
    return {name: format_micros(micros), f"{name}_micros": micros}


def rfc3339(ms: int) -> str | None:
    if ms <= 0:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class PeriodFigures:
    """A budget wallet's current period (config `budgets[]`; ids from periods/calendar.py)."""

    period: str
    funded: int
    projected_spend: int
    at_risk: bool


class _Span(Protocol):
    @property
    def id(self) -> str: ...


class BudgetLike(Protocol):
    """What a wallet view reads of periods.budgets.BudgetStatus (no import: no sibling cycle)."""

    @property
    def current(self) -> _Span: ...
    @property
    def funded(self) -> int: ...
    @property
    def projected_spend(self) -> int: ...
    @property
    def status(self) -> str: ...


def period_figures(status: BudgetLike | None) -> PeriodFigures | None:
    if status is None:
        return None
    return PeriodFigures(
        status.current.id, status.funded, status.projected_spend, status.status == "at_risk"
    )


def wallet_status(wallet: Wallet, period: PeriodFigures | None) -> str:
    """The wallet's status; `at_risk` when healthy now but projected past its period's funds."""
    if period is not None and wallet.status == "healthy" and period.at_risk:
        return "at_risk"
    return wallet.status


def wallet_doc(
    wallet: Wallet, currency: str, burn_per_day: int, period: PeriodFigures | None = None
) -> Doc:
    depletion = depletion_date(wallet.balance, wallet.allocated_total, burn_per_day)
    return {
        "id": wallet.id,
        "scope": wallet.scope,
        "owner": wallet.owner,
        "currency": currency,
        "status": wallet_status(wallet, period),
        **money_pair("balance", wallet.balance),
        **money_pair("reserved", wallet.reserved),
        **money_pair("allocated_total", wallet.allocated_total),
        **money_pair("spent_total", wallet.spent_total),
        **money_pair("burn_rate_per_day", burn_per_day),
        "projected_depletion_date": depletion or None,
        "period": period.period if period else None,
        **money_pair("period_allocation", period.funded if period else None),
        **money_pair("projected_period_spend", period.projected_spend if period else None),
    }


def known_or_empty(cfg: Config, wallet_id: str, found: Wallet | None) -> Wallet | None:
    """The wallet as stored, or an empty one for a team the config names that has never been
    funded (its balance reads 0, not 404); None for anything else unknown."""
    if found is not None:
        return found
    teams = {g.wallet_team_id for g in cfg.consumer_groups if g.wallet_team_id}
    if not (wallet_id.startswith("team:") and wallet_id.removeprefix("team:") in teams):
        return None
    return Wallet.build(
        wallet_id,
        balance=0,
        reserved=0,
        allocated_total=0,
        spent_total=0,
        low_balance_ratio=cfg.enforcement.low_balance_ratio,
        org_id=cfg.organization.id,
    )


def wallet_list_doc(currency: str, wallets: Sequence[Doc]) -> Doc:
    return {"currency": currency, "wallets": list(wallets)}


@dataclass(frozen=True)
class CascadeFigures:
    consumer_group: str
    cascade: tuple[str, ...]
    wallets: tuple[str, ...]
    on_insufficient: str
    effective: Wallet | None


def cascade_summary(
    cfg: Config,
    team_id: str,
    user_id: str,
    records: Mapping[str, Wallet],
    user_team: str,
    teams: Collection[str] | None = None,
) -> list[CascadeFigures]:
    """How each consumer group funded by this team (or used by this user, of `user_team`) is
    funded right now: the effective wallet is the first in its cascade that exists with a
    positive balance. `teams`: only groups of these teams (a team token's), None for all."""
    steps: list[CascadeFigures] = []
    for group in cfg.consumer_groups:
        scopes = cfg.cascade_for(group)
        if team_id and group.wallet_team_id != team_id:
            continue
        if user_id and ("user" not in scopes or group.wallet_team_id != user_team):
            continue
        if teams is not None and group.wallet_team_id not in teams:
            continue
        wallets: list[str] = []
        effective: Wallet | None = None
        for step in cascade_for(cfg, group, user_id or None).steps:
            wid = step.wallet
            if wid is not None:
                wallets.append(wid)
            elif step.scope == "user":
                wallets.append(f"user:<{cfg.user_header_for(group)}>")
            found = records.get(wid) if wid else None
            if effective is None and found is not None and found.balance > 0:
                effective = found
        policy = cfg.policy_for(group) if cfg.cost_tracking.wallet_enforcement else "showback"
        steps.append(CascadeFigures(group.name, tuple(scopes), tuple(wallets), policy, effective))
    return steps


def cascade_doc(step: CascadeFigures) -> Doc:
    eff = step.effective
    return {
        "consumer_group": step.consumer_group,
        "cascade": list(step.cascade),
        "wallets": list(step.wallets),
        "on_insufficient": step.on_insufficient,
        "effective_wallet": eff.id if eff else None,
        "effective_scope": eff.scope if eff else None,
        **money_pair("effective_available", eff.balance if eff else 0),
    }


def balance_doc(
    currency: str, wallet: Doc, org: Doc | None, cascade: Sequence[CascadeFigures]
) -> Doc:
    return {
        "currency": currency,
        "wallet": wallet,
        "org": org,
        "cascade": [cascade_doc(s) for s in cascade],
    }


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.lstrip("-").isdigit():
        return None
    return int(value)


def entry_doc(entry: LedgerEntry) -> Doc:
    f = entry.fields
    attributes: dict[str, str] = {}
    for key, value in f.items():
        if key in _CORE_FIELDS:
            continue
        micros = _int_or_none(value) if key in _MICROS_ATTRIBUTES else None
        if micros is not None:
            attributes[key] = format_micros(micros)
            attributes[f"{key}_micros"] = str(micros)
        else:
            attributes[key] = value
    return {
        "id": entry.id,
        "time": rfc3339(entry.ts_ms),
        "ts_ms": entry.ts_ms,
        "op": entry.op,
        "wallet": entry.wallet,
        **money_pair("amount", entry.amount),
        "actor": f.get("actor", ""),
        "description": f.get("description", ""),
        **money_pair("balance_after", _int_or_none(f.get("balance_after"))),
        "attributes": dict(sorted(attributes.items())),
    }


def ledger_page_doc(
    currency: str, entries: Sequence[LedgerEntry], page_size: int | None = None
) -> Doc:
    """One page, newest first; `next_page_token` (the last id) when the page is full."""
    full = page_size is not None and len(entries) == page_size and entries
    return {
        "currency": currency,
        "entries": [entry_doc(e) for e in entries],
        "next_page_token": entries[-1].id if full else None,
    }


def ticket_doc(ticket: TicketRecord, currency: str) -> Doc:
    return {
        "id": ticket.id,
        "status": ticket.status,
        "team_id": ticket.team,
        "consumer_group": ticket.group,
        "model": ticket.model,
        "user_id": ticket.user or None,
        **money_pair("amount", ticket.amount),
        "currency": currency,
        "created": rfc3339(ticket.created_ms),
        "waiting": ticket.waiting,
        "decided_by": ticket.decided_by or None,
        "decided_at": rfc3339(ticket.decided_ms),
        "reason": ticket.reason or None,
        "funding": ticket.funding or None,
    }


def ticket_list_doc(currency: str, tickets: Sequence[TicketRecord]) -> Doc:
    return {"currency": currency, "tickets": [ticket_doc(t, currency) for t in tickets]}


def topup_doc(topup: TopUpRecord, currency: str) -> Doc:
    return {
        "id": topup.id,
        "status": topup.status,
        "team_id": topup.team,
        "wallet": topup.wallet,
        **money_pair("amount", topup.amount),
        "currency": currency,
        "description": topup.description,
        "requested_by": topup.requested_by,
        "created": rfc3339(topup.created_ms),
        "decided_by": topup.decided_by or None,
        "decided_at": rfc3339(topup.decided_ms),
        "reason": topup.reason or None,
        "entry_id": topup.entry_id or None,
    }


def topup_list_doc(currency: str, topups: Sequence[TopUpRecord]) -> Doc:
    return {"currency": currency, "topups": [topup_doc(t, currency) for t in topups]}


def move_doc(result: OpResult, amount: int, currency: str, actor: str) -> Doc:
    return {
        "op": result.op,
        "entry_id": result.entry_id,
        "replayed": result.replayed,
        **money_pair("amount", amount),
        "currency": currency,
        "actor": actor,
        "balances": {w: format_micros(b) for w, b in sorted(result.balances.items())},
        "balances_micros": dict(sorted(result.balances.items())),
    }


def error_doc(error_type: str, message: str, details: Mapping[str, Any] | None = None) -> Doc:
    """`{"error": {"type", "message", ...details}}`: the one error shape of every HTTP answer."""
    body: Doc = {"type": error_type, "message": message}
    for key, value in (details or {}).items():
        if key not in body:
            body[key] = value
    return {"error": body}


__all__ = [
    "BudgetLike",
    "CascadeFigures",
    "Doc",
    "PeriodFigures",
    "balance_doc",
    "cascade_doc",
    "cascade_summary",
    "entry_doc",
    "error_doc",
    "known_or_empty",
    "ledger_page_doc",
    "money_pair",
    "move_doc",
    "period_figures",
    "rfc3339",
    "ticket_doc",
    "ticket_list_doc",
    "topup_doc",
    "topup_list_doc",
    "wallet_doc",
    "wallet_list_doc",
    "wallet_status",
]
