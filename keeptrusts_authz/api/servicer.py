"""keeptrusts.wallet.v1.WalletService: the wallet admin API over the wallet domain layer.

Every call: authenticate the admin token (401), check the role (403), validate the request (400
naming the field), then call WalletService / the ticket store. Domain errors become gRPC statuses
(api.status) that Envoy's transcoder turns into HTTP statuses with a JSON body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import grpc
from google.api.httpbody_pb2 import HttpBody as Body

from keeptrusts_authz.api import requests as rq
from keeptrusts_authz.api.auth import AdminAuth, PermissionDenied, Principal
from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2 as pb
from keeptrusts_authz.api.gen.keeptrusts.wallet.v1 import wallet_pb2_grpc as pb_grpc
from keeptrusts_authz.api.status import abort
from keeptrusts_authz.config.models import Config
from keeptrusts_authz.console import asset as console_asset
from keeptrusts_authz.errors import (
    Conflict,
    InvalidInput,
    KeeptrustsError,
    UnknownWallet,
)
from keeptrusts_authz.periods.budgets import BudgetStatus, PeriodRunner, calendar_of
from keeptrusts_authz.periods.calendar import BudgetCalendar
from keeptrusts_authz.reports.chargeback import GROUP_BYS, parse_period
from keeptrusts_authz.reports.render import FORMATS, chargeback_report
from keeptrusts_authz.wallets.burn import BurnWindow
from keeptrusts_authz.wallets.holds import TICKET_ID
from keeptrusts_authz.wallets.models import OpResult, TopUpRecord, Wallet
from keeptrusts_authz.wallets.ports import TicketConflict, TicketNotFound, TicketStore
from keeptrusts_authz.wallets.service import WalletService
from keeptrusts_authz.wallets.topups import STATUSES as TOPUP_STATUSES
from keeptrusts_authz.wallets.topups import TopUps
from keeptrusts_authz.wallets.views import (
    CascadeFigures,
    Doc,
    balance_doc,
    cascade_summary,
    known_or_empty,
    ledger_page_doc,
    move_doc,
    period_figures,
    ticket_doc,
    ticket_list_doc,
    topup_doc,
    topup_list_doc,
    wallet_doc,
    wallet_list_doc,
)

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]

_AMOUNT: rq.Kind = "amount"
_TARGET_SPEC: dict[str, rq.Kind] = {
    "team_id": "str",
    "user_id": "str",
    "amount": _AMOUNT,
    "currency": "str",
    "description": "str",
    "request_id": "str",
}
_CREDIT_SPEC: dict[str, rq.Kind] = {
    "amount": _AMOUNT,
    "currency": "str",
    "description": "str",
    "request_id": "str",
}
_TRANSFER_SPEC: dict[str, rq.Kind] = {
    "from_team_id": "str",
    "to_team_id": "str",
    "from_user_id": "str",
    "to_user_id": "str",
    "amount": _AMOUNT,
    "currency": "str",
    "description": "str",
    "request_id": "str",
}
_APPROVE_SPEC: dict[str, rq.Kind] = {"funding": "str", "reason": "str"}
_TEAM_MOVE_SPEC: dict[str, rq.Kind] = {
    "user_id": "str",
    "amount": _AMOUNT,
    "currency": "str",
    "description": "str",
    "request_id": "str",
}
_TOPUP_SPEC: dict[str, rq.Kind] = {"amount": _AMOUNT, "currency": "str", "description": "str"}
_DECIDE_TOPUP_SPEC: dict[str, rq.Kind] = {"reason": "str"}
_DENY_SPEC: dict[str, rq.Kind] = {"reason": "str"}
_SCOPES = ("", "org", "team", "user")
_TICKET_STATUSES = ("", "pending", "approved", "denied", "funded", "used")
_FUNDING = ("org", "overdraft")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_MAX_REASON = 500


class UnknownTicket(KeeptrustsError):
    def __init__(self, ticket_id: str) -> None:
        super().__init__(
            "unknown_ticket", f"unknown ticket {ticket_id}", 404, {"ticket_id": ticket_id}
        )


def json_body(doc: Doc) -> Body:
    """A resource document (wallets/views.py) as the answer: the transcoder sends these bytes."""
    return Body(
        content_type="application/json", data=json.dumps(doc, separators=(",", ":")).encode()
    )


def _metadata(context: Context) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            out[key.lower()] = value
    return out


class _TeamRecord(Protocol):
    @property
    def team(self) -> str: ...
    @property
    def status(self) -> str: ...


_R = TypeVar("_R", bound=_TeamRecord)


def _visible(who: Principal, records: Iterable[_R], status: str, team_id: str) -> list[_R]:
    """The tickets or top-ups a token may read, filtered by the listing's status and team (one
    rule for both listings: a team the token may not read is refused, not silently empty)."""
    if team_id and not who.may_read_team(team_id):
        raise PermissionDenied(f"this token may not read team {team_id}")
    return [
        r
        for r in records
        if who.may_read_team(r.team)
        and (not status or r.status == status)
        and (not team_id or r.team == team_id)
    ]


class WalletApiServicer(pb_grpc.WalletServiceServicer):
    def __init__(
        self,
        wallets: WalletService,
        config: Config,
        auth: AdminAuth,
        tickets: TicketStore | None,
        periods: PeriodRunner | None = None,
        topups: TopUps | None = None,
    ) -> None:
        self._wallets = wallets
        self._topups = topups
        self._periods = periods
        self._config = config
        self._auth = auth
        self._tickets = tickets
        self._currency = config.organization.currency
        self._teams = {g.wallet_team_id for g in config.consumer_groups if g.wallet_team_id}

    # -- plumbing ----------

    async def _call(
        self,
        request: Req,
        context: Context,
        handler: Callable[[Principal, Req, Mapping[str, str]], Awaitable[Resp]],
    ) -> Resp:
        metadata = _metadata(context)
        try:
            principal = self._auth.authenticate(metadata)
            return await handler(principal, request, metadata)
        except KeeptrustsError as exc:
            await abort(context, exc)
        except Exception:
            log.exception("wallet API call failed unexpectedly")
            await abort(context, KeeptrustsError("internal", "internal error", 500))

    def _move_response(self, result: OpResult, amount: int, actor: str) -> Body:
        return json_body(move_doc(result, amount, self._currency, actor))

    async def _period_statuses(self) -> dict[str, BudgetStatus]:
        if self._periods is None or not self._periods.rules:
            return {}
        return {s.rule.wallet_id: s for s in await self._periods.status()}

    def _wallet_doc(
        self,
        wallet: Wallet,
        window: BurnWindow,
        periods: Mapping[str, BudgetStatus] | None = None,
    ) -> Doc:
        period = period_figures((periods or {}).get(wallet.id))
        return wallet_doc(wallet, self._currency, window.per_day(wallet.id), period)

    # -- money moves ----------

    async def Credit(self, request: pb.CreditRequest, context: Context) -> Body:
        return await self._call(request, context, self._credit)

    async def _credit(
        self, who: Principal, request: pb.CreditRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("credit")
        f = rq.fields_of(request, _CREDIT_SPEC)
        amount = rq.amount_micros(f)
        result = await self._wallets.credit(
            amount,
            rq.text(f, "currency", required=True),
            rq.text(f, "description"),
            who.name,
            rq.idempotency_key(md, f),
        )
        return self._move_response(result, amount, who.name)

    async def Allocate(self, request: pb.AllocateRequest, context: Context) -> Body:
        return await self._call(request, context, self._allocate)

    async def _allocate(
        self, who: Principal, request: pb.AllocateRequest, md: Mapping[str, str]
    ) -> Body:
        return await self._one_wallet_move("allocate", who, request, md)

    async def Reclaim(self, request: pb.ReclaimRequest, context: Context) -> Body:
        return await self._call(request, context, self._reclaim)

    async def _reclaim(
        self, who: Principal, request: pb.ReclaimRequest, md: Mapping[str, str]
    ) -> Body:
        return await self._one_wallet_move("reclaim", who, request, md)

    async def _one_wallet_move(
        self,
        op: str,
        who: Principal,
        request: pb.AllocateRequest | pb.ReclaimRequest,
        md: Mapping[str, str],
    ) -> Body:
        """Allocate and reclaim: org pool <-> the one team or user wallet the body names."""
        who.require_billing(op)
        f = rq.fields_of(request, _TARGET_SPEC)
        team = rq.text(f, "team_id")
        user = rq.text(f, "user_id")
        # team_id + user_id: that team's user wallet (users belong to teams); one of them: as
        # before, a user alone only where its team is unambiguous (WalletService.user_team_for).
        wallet = f"user:{user}" if team and user else rq.one_wallet(f, "team_id", "user_id")
        amount = rq.amount_micros(f)
        args = (
            wallet,
            amount,
            rq.text(f, "currency", required=True),
            rq.text(f, "description"),
            who.name,
            rq.idempotency_key(md, f),
        )
        if op == "allocate":
            result = await self._wallets.allocate(*args, team=team if user else None)
        else:
            # team_id + user_id: reclaim.lua checks the user's team in the same script.
            result = await self._wallets.reclaim(*args, team=team if user else None)
        return self._move_response(result, amount, who.name)

    async def Transfer(self, request: pb.TransferRequest, context: Context) -> Body:
        return await self._call(request, context, self._transfer)

    async def _transfer(
        self, who: Principal, request: pb.TransferRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("transfer")
        f = rq.fields_of(request, _TRANSFER_SPEC)
        source = rq.one_wallet(f, "from_team_id", "from_user_id")
        destination = rq.one_wallet(f, "to_team_id", "to_user_id")
        amount = rq.amount_micros(f)
        result = await self._wallets.transfer(
            source,
            destination,
            amount,
            rq.text(f, "currency", required=True),
            rq.text(f, "description"),
            who.name,
            rq.idempotency_key(md, f),
        )
        return self._move_response(result, amount, who.name)

    # -- reads ----------

    async def ListWallets(self, request: pb.ListWalletsRequest, context: Context) -> Body:
        return await self._call(request, context, self._list_wallets)

    async def _list_wallets(
        self, who: Principal, request: pb.ListWalletsRequest, md: Mapping[str, str]
    ) -> Body:
        if request.scope not in _SCOPES:
            raise InvalidInput("scope: must be org, team or user", {"field": "scope"})
        user_teams = {} if who.reads_all else await self._wallets.user_teams()
        burn = await self._wallets.burn_window()
        visible = [
            w
            for w in await self._wallets.wallets()
            if who.may_read_wallet(w.id, user_teams)
            and (not request.scope or w.scope == request.scope)
        ]
        periods = await self._period_statuses()
        return json_body(
            wallet_list_doc(self._currency, [self._wallet_doc(w, burn, periods) for w in visible])
        )

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> Body:
        return await self._call(request, context, self._balance)

    async def _balance(
        self, who: Principal, request: pb.GetBalanceRequest, md: Mapping[str, str]
    ) -> Body:
        f = {"team_id": request.team_id, "user_id": request.user_id}
        wallet_id = rq.one_wallet(f, "team_id", "user_id")
        user_teams = await self._wallets.user_teams()
        if not who.may_read_wallet(wallet_id, user_teams):
            raise PermissionDenied(f"this token may not read {wallet_id}")
        records = {w.id: w for w in await self._wallets.wallets()}
        burn = await self._wallets.burn_window()
        wallet = known_or_empty(self._config, wallet_id, records.get(wallet_id))
        if wallet is None:
            raise UnknownWallet(f"unknown wallet {wallet_id}", {"wallet": wallet_id})
        org = records.get("org") if who.reads_all else None
        return json_body(
            balance_doc(
                self._currency,
                self._wallet_doc(wallet, burn, await self._period_statuses()),
                self._wallet_doc(org, burn) if org is not None else None,
                self._cascade(who, request.team_id, request.user_id, records, user_teams),
            )
        )

    def _cascade(
        self,
        who: Principal,
        team_id: str,
        user_id: str,
        records: Mapping[str, Wallet],
        user_teams: Mapping[str, str],
    ) -> list[CascadeFigures]:
        """The groups that can spend from the wallet asked for: a user's own team's groups only
        (a group's cascade reaches no user of another team), and for a team token only groups
        of its own teams (no other team's wallets or balances)."""
        user_team = user_teams.get(user_id, "") if user_id else ""
        teams = None if who.reads_all else who.teams
        return cascade_summary(self._config, team_id, user_id, records, user_team, teams)

    async def ListTransactions(self, request: pb.ListTransactionsRequest, context: Context) -> Body:
        return await self._call(request, context, self._transactions)

    async def _transactions(
        self, who: Principal, request: pb.ListTransactionsRequest, md: Mapping[str, str]
    ) -> Body:
        wallet_id = rq.wallet_id(request.wallet_id)
        if not who.reads_all and not who.may_read_wallet(
            wallet_id, await self._wallets.user_teams()
        ):
            raise PermissionDenied(f"this token may not read {wallet_id}")
        size = request.page_size or 50
        if not 1 <= size <= 500:
            raise InvalidInput("page_size: must be between 1 and 500", {"field": "page_size"})
        token = request.page_token or None
        if token is not None and not _STREAM_ID.match(token):
            raise InvalidInput("page_token: not a page token", {"field": "page_token"})
        await self._wallets.wallet(wallet_id)  # UnknownWallet -> 404
        entries = await self._wallets.ledger(size, before=token, wallet=wallet_id)
        return json_body(ledger_page_doc(self._currency, entries, size))

    # -- tickets ----------

    def _ticket_store(self) -> TicketStore:
        if self._tickets is None:
            raise KeeptrustsError("unavailable", "cost tickets are not available", 503)
        return self._tickets

    async def ListTickets(self, request: pb.ListTicketsRequest, context: Context) -> Body:
        return await self._call(request, context, self._list_tickets)

    async def _list_tickets(
        self, who: Principal, request: pb.ListTicketsRequest, md: Mapping[str, str]
    ) -> Body:
        if request.status not in _TICKET_STATUSES:
            raise InvalidInput(
                "status: must be pending, approved, denied, funded or used", {"field": "status"}
            )
        tickets = _visible(who, await self._ticket_store().list(), request.status, request.team_id)
        return json_body(ticket_list_doc(self._currency, tickets))

    async def ApproveTicket(self, request: pb.ApproveTicketRequest, context: Context) -> Body:
        return await self._call(request, context, self._approve)

    async def _approve(
        self, who: Principal, request: pb.ApproveTicketRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("approving a ticket")
        f = rq.fields_of(request, _APPROVE_SPEC)
        funding = rq.text(f, "funding") or "org"
        if funding not in _FUNDING:
            raise InvalidInput("funding: must be org or overdraft", {"field": "funding"})
        return await self._decide(who, request.ticket_id, "approved", funding, rq.text(f, "reason"))

    async def DenyTicket(self, request: pb.DenyTicketRequest, context: Context) -> Body:
        return await self._call(request, context, self._deny)

    async def _deny(
        self, who: Principal, request: pb.DenyTicketRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("denying a ticket")
        f = rq.fields_of(request, _DENY_SPEC)
        return await self._decide(who, request.ticket_id, "denied", "", rq.text(f, "reason"))

    async def _decide(
        self, who: Principal, ticket_id: str, status: str, funding: str, reason: str
    ) -> Body:
        if not TICKET_ID.match(ticket_id):
            raise InvalidInput("ticket_id: not a ticket id (tk_ + 24 hex)", {"field": "ticket_id"})
        if len(reason) > _MAX_REASON or any(ord(c) < 32 for c in reason):
            raise InvalidInput(
                f"reason: at most {_MAX_REASON} characters, no control characters",
                {"field": "reason"},
            )
        try:
            ticket = await self._ticket_store().transition(
                ticket_id,
                ("pending",),
                status,
                publish=True,
                decided_by=who.name,
                decided_ms=str(int(time.time() * 1000)),
                funding=funding,
                reason=reason,
            )
        except TicketNotFound:
            raise UnknownTicket(ticket_id) from None
        except TicketConflict as exc:
            raise Conflict(
                f"ticket {ticket_id} is already {exc.current}",
                {"ticket_id": ticket_id, "status": exc.current},
            ) from None
        return json_body(ticket_doc(ticket, self._currency))

    # -- team leads: re-split and top-ups ----------

    async def TeamAllocate(self, request: pb.TeamMoveRequest, context: Context) -> Body:
        return await self._call(request, context, self._team_allocate)

    async def _team_allocate(
        self, who: Principal, request: pb.TeamMoveRequest, md: Mapping[str, str]
    ) -> Body:
        return await self._team_move("allocate", who, request, md)

    async def TeamReclaim(self, request: pb.TeamMoveRequest, context: Context) -> Body:
        return await self._call(request, context, self._team_reclaim)

    async def _team_reclaim(
        self, who: Principal, request: pb.TeamMoveRequest, md: Mapping[str, str]
    ) -> Body:
        return await self._team_move("reclaim", who, request, md)

    async def _team_move(
        self,
        direction: Literal["allocate", "reclaim"],
        who: Principal,
        request: pb.TeamMoveRequest,
        md: Mapping[str, str],
    ) -> Body:
        """team wallet <-> one of the team's user wallets, by the team's token (or billing)."""
        team_id = rq.wallet_id(f"team:{request.team_id}", "team_id")[5:]
        who.require_team_lead(team_id, "re-splitting the budget")
        f = rq.fields_of(request, _TEAM_MOVE_SPEC)
        user_id = rq.wallet_id(f"user:{rq.text(f, 'user_id', required=True)}", "user_id")[5:]
        amount = rq.amount_micros(f)
        result = await self._wallets.team_move(
            direction,
            team_id,
            user_id,
            amount,
            rq.text(f, "currency", required=True),
            rq.text(f, "description"),
            who.name,
            rq.idempotency_key(md, f),
        )
        return self._move_response(result, amount, who.name)

    def _topup_service(self) -> TopUps:
        if self._topups is None:
            raise KeeptrustsError("unavailable", "top-ups are not available", 503)
        return self._topups

    def _topup_doc(self, t: TopUpRecord) -> Body:
        return json_body(topup_doc(t, self._currency))

    async def RequestTopUp(self, request: pb.TopUpRequest, context: Context) -> Body:
        return await self._call(request, context, self._request_topup)

    async def _request_topup(
        self, who: Principal, request: pb.TopUpRequest, md: Mapping[str, str]
    ) -> Body:
        team_id = rq.wallet_id(f"team:{request.team_id}", "team_id")[5:]
        who.require_team_lead(team_id, "requesting a top-up")
        f = rq.fields_of(request, _TOPUP_SPEC)
        amount = rq.amount_micros(f)
        self._wallets.check_currency(rq.text(f, "currency", required=True))
        record = await self._topup_service().request(
            team_id, amount, rq.text(f, "description"), who.name
        )
        return self._topup_doc(record)

    async def ListTopUps(self, request: pb.ListTopUpsRequest, context: Context) -> Body:
        return await self._call(request, context, self._list_topups)

    async def _list_topups(
        self, who: Principal, request: pb.ListTopUpsRequest, md: Mapping[str, str]
    ) -> Body:
        if request.status and request.status not in TOPUP_STATUSES:
            raise InvalidInput("status: must be pending, approved or denied", {"field": "status"})
        topups = _visible(who, await self._topup_service().list(), request.status, request.team_id)
        return json_body(topup_list_doc(self._currency, topups))

    async def ApproveTopUp(self, request: pb.DecideTopUpRequest, context: Context) -> Body:
        return await self._call(request, context, self._approve_topup)

    async def _approve_topup(
        self, who: Principal, request: pb.DecideTopUpRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("approving a top-up")
        f = rq.fields_of(request, _DECIDE_TOPUP_SPEC)
        record, _ = await self._topup_service().approve(
            request.topup_id, who.name, rq.text(f, "reason")
        )
        return self._topup_doc(record)

    async def DenyTopUp(self, request: pb.DecideTopUpRequest, context: Context) -> Body:
        return await self._call(request, context, self._deny_topup)

    async def _deny_topup(
        self, who: Principal, request: pb.DecideTopUpRequest, md: Mapping[str, str]
    ) -> Body:
        who.require_billing("denying a top-up")
        f = rq.fields_of(request, _DECIDE_TOPUP_SPEC)
        record = await self._topup_service().deny(request.topup_id, who.name, rq.text(f, "reason"))
        return self._topup_doc(record)

    # -- reports ----------

    async def GetChargebackReport(
        self, request: pb.GetChargebackReportRequest, context: Context
    ) -> Body:
        return await self._call(request, context, self._chargeback)

    async def _chargeback(
        self, who: Principal, request: pb.GetChargebackReportRequest, md: Mapping[str, str]
    ) -> Body:
        # The report's rows reconcile to the organization's ledger totals (and show transfer
        # counterparts, org-backstop spend and the org pool): it is not split per team, so a
        # team-only token gets 403 and reads its team through the wallet routes instead.
        who.require_read_all("the chargeback report")
        calendar = calendar_of(self._config)
        period, date_from, date_to = _report_window(
            calendar, request.period, getattr(request, "from"), request.to
        )
        fmt = request.format or "csv"
        if fmt not in FORMATS:
            raise InvalidInput(f"format: one of {', '.join(FORMATS)}", {"field": "format"})
        group_by = request.group_by or "team"
        if group_by not in GROUP_BYS:
            raise InvalidInput(f"group_by: one of {', '.join(GROUP_BYS)}", {"field": "group_by"})
        content_type, body = await chargeback_report(
            self._wallets,
            period,
            fmt,
            group_by,
            date_from=date_from,
            date_to=date_to,
            calendar=calendar,
        )
        return Body(content_type=content_type, data=body)

    # -- console ----------

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Context) -> pb.WhoAmIResponse:
        return await self._call(request, context, self._whoami)

    async def _whoami(
        self, who: Principal, request: pb.WhoAmIRequest, md: Mapping[str, str]
    ) -> pb.WhoAmIResponse:
        calendar = calendar_of(self._config)
        now = datetime.now(UTC)
        teams = sorted(self._teams) if who.reads_all else sorted(who.teams)
        return pb.WhoAmIResponse(
            name=who.name,
            roles=sorted(who.roles),
            billing=who.billing,
            reads_all=who.reads_all,
            teams=teams,
            organization=self._config.organization.id,
            currency=self._currency,
            current_month=calendar.period_at("monthly", now).id,
            current_quarter=calendar.period_at("quarterly", now).id,
        )

    async def GetConsoleAsset(self, request: pb.GetConsoleAssetRequest, context: Context) -> Body:
        # No token: the console's files are public; the API calls the page makes carry one.
        found = console_asset(request.asset)
        if found is None:
            await abort(
                context,
                KeeptrustsError(
                    "not_found", f"no console file {request.asset[:64]!r}", 404, {"field": "asset"}
                ),
            )
        assert found is not None
        return Body(content_type=found[0], data=found[1])


def _report_window(
    calendar: BudgetCalendar, period: str, date_from: str, date_to: str
) -> tuple[str | None, str | None, str | None]:
    """Validate the report's query parameters before any I/O (400 naming the field); the rules
    are reports.chargeback.parse_period's."""
    parse_period(period or None, date_from or None, date_to or None, calendar=calendar)
    return period or None, date_from or None, date_to or None


__all__ = ["UnknownTicket", "WalletApiServicer"]
