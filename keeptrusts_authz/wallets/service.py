"""WalletService: the domain API the gateway, the wallet API and the CLI call.

Validates every request (ids, amounts, currency, policies) before anything reaches the store, maps
store refusals to domain errors (keeptrusts_authz.errors) and computes wallet status. Amounts are
integer micros; decimals are the caller's business (keeptrusts_authz.money).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

from keeptrusts_authz.config.models import Config
from keeptrusts_authz.errors import (
    BalanceLimit,
    Conflict,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidInput,
    RestoreRefused,
    StoreRegressed,
    UnknownWallet,
    UserNotInTeam,
)
from keeptrusts_authz.money import format_micros
from keeptrusts_authz.wallets.archived_audit import audit_with_archive
from keeptrusts_authz.wallets.audit import LedgerReplay, compare
from keeptrusts_authz.wallets.burn import BurnWindow, burn_days
from keeptrusts_authz.wallets.history import ArchivedHistory, LedgerHistory, MergedHistory
from keeptrusts_authz.wallets.integrity import ArchiveWatermark, StoreIntegrity
from keeptrusts_authz.wallets.models import (
    IDEMPOTENCY_KEY,
    MAX_AMOUNT_MICROS,
    MAX_WALLET_MICROS,
    RESERVATION_ID,
    AuditReport,
    ExpiredReservation,
    JournaledCharge,
    LedgerEntry,
    OpResult,
    ReleaseLike,
    ReleaseRequest,
    Reservation,
    ReserveRequest,
    ReserveResult,
    RestorePlan,
    SettleRequest,
    SettleResult,
    Wallet,
    parse_wallet_id,
)
from keeptrusts_authz.wallets.ports import (
    LedgerArchive,
    SettlementJournal,
    StoreRefused,
    WalletStore,
)
from keeptrusts_authz.wallets.restore import (
    RestoreReport,
    journal_lookback_ms,
    match_journal,
    plan_restore,
)

_POLICIES = ("block", "warn", "hold", "showback")
_MAX_TEXT = 500
_MAX_LABEL = 256
_SCOPE_ORDER = {"org": 0, "team": 1, "user": 2}


def _check_amount(amount: int, field: str = "amount", *, allow_zero: bool = False) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(f"{field}: must be an integer number of micros", {"field": field})
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidInput(
            f"{field}: must be {'>= 0' if allow_zero else 'greater than zero'}", {"field": field}
        )
    if amount > MAX_AMOUNT_MICROS:
        raise InvalidInput(
            f"{field}: must be at most {format_micros(MAX_AMOUNT_MICROS)}", {"field": field}
        )
    return amount


def _check_text(value: str, field: str, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string", {"field": field})
    if len(value) > limit:
        raise InvalidInput(f"{field}: at most {limit} characters", {"field": field})
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise InvalidInput(f"{field}: must not contain control characters", {"field": field})
    return value


def _check_reservation_id(reservation_id: str) -> str:
    if not isinstance(reservation_id, str) or not RESERVATION_ID.match(reservation_id):
        raise InvalidInput(
            "reservation_id: 1-128 characters of [A-Za-z0-9_.-]", {"field": "reservation_id"}
        )
    if reservation_id == "deadlines":
        raise InvalidInput("reservation_id: reserved name", {"field": "reservation_id"})
    return reservation_id


def fingerprint(op: str, **request: object) -> str:
    """sha256 of the canonical JSON of an admin request (op + every field but the actor)."""
    canonical = json.dumps({"op": op, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class WalletService:
    """Wallets of the configured organization."""

    def __init__(
        self,
        store: WalletStore,
        config: Config,
        archive: ArchiveWatermark | None = None,
        on_integrity: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._store = store
        self.integrity = StoreIntegrity(store, archive, on_integrity)
        # Ledger history: PostgreSQL merged with the Redis tail when archiving, else Redis.
        self.history: LedgerHistory = (
            MergedHistory(store, archive) if isinstance(archive, ArchivedHistory) else store
        )
        self._config = config
        self.org_id = config.organization.id
        self.currency = config.organization.currency
        self._low_ratio = config.enforcement.low_balance_ratio
        self._teams = {g.wallet_team_id for g in config.consumer_groups if g.wallet_team_id}
        # Users the configuration places in a team (a user budget names its team).
        self._configured_user_teams = {b.user_id: b.team_id for b in config.budgets if b.user_id}

    @property
    def store(self) -> WalletStore:
        return self._store

    # -- validation helpers ---------------------------------------------------------------------

    def check_currency(self, currency: str) -> None:
        """CurrencyMismatch unless `currency` is the organization's (no conversion is done)."""
        self._check_currency(currency)

    def _check_currency(self, currency: str) -> None:
        if not isinstance(currency, str) or currency.strip().upper() != self.currency:
            shown = currency[:8] if isinstance(currency, str) else type(currency).__name__
            raise CurrencyMismatch(
                f"currency {shown!r} does not match the organization currency {self.currency} "
                "(no conversion is done)",
                {"currency": shown, "expected": self.currency},
            )

    def _check_actor(self, actor: str) -> str:
        actor = _check_text(actor, "actor", 128)
        if not actor.strip():
            raise InvalidInput("actor: must not be empty", {"field": "actor"})
        return actor

    @staticmethod
    def _check_idem(key: str | None) -> str | None:
        if key is None:
            return None
        if not isinstance(key, str) or not IDEMPOTENCY_KEY.match(key):
            raise InvalidInput(
                "idempotency_key: 1-128 characters of [A-Za-z0-9_.:-]", {"field": "idempotency_key"}
            )
        return key

    def _may_create(self, wallet_id: str) -> bool:
        scope, owner = parse_wallet_id(wallet_id)
        return scope == "user" or (scope == "team" and owner in self._teams)

    def _member_wallet(self, wallet_id: str, field: str) -> str:
        scope, _ = parse_wallet_id(wallet_id)
        if scope == "org":
            raise InvalidInput(
                f"{field}: must be a team or user wallet, not the org pool", {"field": field}
            )
        return wallet_id

    def _refused(self, exc: StoreRefused, requested: int, team: str = "") -> NoReturn:
        if exc.reason == "unknown_wallet":
            raise UnknownWallet(f"unknown wallet {exc.wallet}", {"wallet": exc.wallet}) from None
        if exc.reason == "insufficient":
            raise InsufficientFunds(
                f"insufficient funds in {exc.wallet}: {format_micros(exc.available)} "
                f"{self.currency} available, {format_micros(requested)} {self.currency} requested",
                {
                    "wallet": exc.wallet,
                    "available": format_micros(exc.available),
                    "available_micros": exc.available,
                    "requested": format_micros(requested),
                    "requested_micros": requested,
                    "currency": self.currency,
                },
            ) from None
        if exc.reason == "bound":
            raise BalanceLimit(
                f"refused: {exc.wallet} {exc.field} would exceed "
                f"{format_micros(MAX_WALLET_MICROS)} {self.currency} (2^53 - 1 micros, the most a "
                "wallet balance or total may hold); nothing was changed",
                {
                    "wallet": exc.wallet,
                    "field": exc.field,
                    "limit": format_micros(MAX_WALLET_MICROS),
                    "limit_micros": MAX_WALLET_MICROS,
                    "requested": format_micros(requested),
                    "currency": self.currency,
                },
            ) from None
        if exc.reason == "wrong_team":
            # Never names the team the wallet does belong to: the caller may be another team's.
            raise UserNotInTeam(
                f"{exc.wallet} does not belong to " + (f"team {team}" if team else "this team"),
                {"wallet": exc.wallet, "team_id": team},
            ) from None
        if exc.reason == "conflict":
            raise Conflict(
                "idempotency key already used for a different request", {"reason": "idempotency"}
            ) from None
        raise InvalidInput(f"refused: {exc.reason}") from None

    # -- admin moves ----------------------------------------------------------------------------

    def _move(
        self,
        op: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None,
        **target: str,
    ) -> dict[str, Any]:
        """Validate what every money move shares; the store keyword arguments for it."""
        _check_amount(amount_micros)
        self._check_currency(currency)
        description = _check_text(description, "description")
        return {
            "actor": self._check_actor(actor),
            "description": description,
            "idempotency_key": self._check_idem(idempotency_key),
            # The fingerprint covers the request, not who sent it: a retry by anyone replays.
            "fingerprint": fingerprint(
                op,
                **target,
                amount=amount_micros,
                currency=self.currency,
                description=description,
            ),
        }

    async def credit(
        self,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None = None,
    ) -> OpResult:
        """Money into the org pool."""
        common = self._move("credit", amount_micros, currency, description, actor, idempotency_key)
        try:
            return await self._store.credit(amount_micros, **common)
        except StoreRefused as exc:
            self._refused(exc, amount_micros)

    async def allocate(
        self,
        wallet_id: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None = None,
        team: str | None = None,
    ) -> OpResult:
        """Org pool -> team or user wallet. A team wallet is created on first allocation when the
        team is a configured `wallet_team_id`; a user wallet on its first allocation, in the team
        `team` names or, without it, the one team it can only be (user_team_for)."""
        wallet_id = self._member_wallet(wallet_id, "wallet_id")
        common = self._move(
            "allocate",
            amount_micros,
            currency,
            description,
            actor,
            idempotency_key,
            wallet=wallet_id,
        )
        owner = await self.user_team_for(wallet_id, team)
        try:
            return await self._store.allocate(
                wallet_id, amount_micros, create=self._may_create(wallet_id), team=owner, **common
            )
        except StoreRefused as exc:
            self._refused(exc, amount_micros, owner)

    def membership(self, user_id: str, recorded: str) -> str:
        """THE precedence of "which team a user belongs to" (one owner; user_team_for,
        user_teams and the team leads' moves all go through it): the team its wallet record
        carries (`recorded`, what reserve.lua / transfer.lua / reclaim.lua enforce), else the
        team the config places it in (a user budget), else '' (not placed). A user budget that
        names another team than the record is refused by the rollover (period_rollover.lua
        `wrong_team`, alerted), never funded silently."""
        return recorded or self._configured_user_teams.get(user_id, "")

    async def user_team_for(self, wallet_id: str, team: str | None) -> str:
        """The team a USER wallet is funded for ('' for team and org wallets): `membership`,
        else the only configured team. `team` names it explicitly (a configured team; it must
        agree with `membership`, and the store re-checks the record in the same script as the
        move). Anything else is ambiguous: 400 team_required."""
        scope, user = parse_wallet_id(wallet_id)
        if scope != "user":
            if team:
                raise InvalidInput(
                    "team_id: names the team of a user wallet; give user_id too",
                    {"field": "team_id"},
                )
            return ""
        if team and team not in self._teams:
            raise InvalidInput(f"team_id: {team!r} is not a configured team", {"field": "team_id"})
        placed = self.membership(user, await self._store.wallet_team(wallet_id))
        if team:
            if placed and placed != team:
                raise UserNotInTeam(
                    f"{wallet_id} does not belong to team {team}",
                    {"wallet": wallet_id, "team_id": team},
                )
            return team
        if placed:
            return placed
        if len(self._teams) == 1:
            return next(iter(self._teams))
        raise InvalidInput(
            f"{wallet_id} belongs to no team yet: name its team (team_id with user_id); "
            f"configured teams: {', '.join(sorted(self._teams)) or 'none'}",
            {"field": "team_id", "reason": "team_required", "wallet": wallet_id},
        )

    async def user_teams(self) -> dict[str, str]:
        """User id -> the team it belongs to (`membership` of every recorded or configured
        user). Never from the ledger: the user/team fields of reserve entries come from request
        headers, which a key holder chooses."""
        recorded = {wid[5:]: team for wid, team in (await self._store.wallet_teams()).items()}
        users = set(self._configured_user_teams) | set(recorded)
        out = {u: self.membership(u, recorded.get(u, "")) for u in users}
        return {u: t for u, t in out.items() if t}

    async def reclaim(
        self,
        wallet_id: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None = None,
        team: str | None = None,
    ) -> OpResult:
        """Team or user wallet -> org pool (available balance only). `team`: a user wallet must
        belong to it (the store checks its record in the same script as the move)."""
        wallet_id = self._member_wallet(wallet_id, "wallet_id")
        if team and not wallet_id.startswith("user:"):
            raise InvalidInput(
                "team_id: names the team of a user wallet; give user_id too", {"field": "team_id"}
            )
        common = self._move(
            "reclaim",
            amount_micros,
            currency,
            description,
            actor,
            idempotency_key,
            wallet=wallet_id,
        )
        try:
            return await self._store.reclaim(
                wallet_id, amount_micros, source_team=team or "", **common
            )
        except StoreRefused as exc:
            self._refused(exc, amount_micros, team or "")

    async def transfer(
        self,
        source: str,
        destination: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None = None,
        team: str | None = None,
    ) -> OpResult:
        """Atomic reallocation between two team/user wallets (available balance only). A user
        destination is (or becomes) a user of `team`, or of its one team (user_team_for)."""
        source = self._member_wallet(source, "from")
        destination = self._member_wallet(destination, "to")
        if source == destination:
            raise InvalidInput("cannot transfer a wallet to itself", {"wallet": source})
        return await self._transfer(
            source,
            destination,
            amount_micros,
            currency,
            description,
            actor,
            idempotency_key,
            source_team="",
            team=await self.user_team_for(destination, team),
        )

    async def team_move(
        self,
        direction: Literal["allocate", "reclaim"],
        team_id: str,
        user_id: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None = None,
    ) -> OpResult:
        """A team lead's move between its team wallet and one of its users' wallets (available
        balance only): "allocate" re-splits its budget (team wallet -> one of ITS users'
        wallets), "reclaim" takes budget back (one of its users' wallets -> the team wallet).
        allocate: only to a user already placed in the team (_lead_may_fund),
        the wallet created only when the config places it, never adopting a team-less wallet;
        reclaim: only from a user whose record is the team. transfer.lua checks the user's
        record in the same script as the move."""
        team, user = self._team_and_user(team_id, user_id)
        if direction == "allocate":
            create = await self._lead_may_fund(user, team_id)
            source, destination, source_team, dest_team = team, user, "", team_id
        else:
            create = None
            source, destination, source_team, dest_team = user, team, team_id, ""
        return await self._transfer(
            source,
            destination,
            amount_micros,
            currency,
            description,
            actor,
            idempotency_key,
            source_team=source_team,
            team=dest_team,
            create=create,
            adopt=False,
        )

    def _team_and_user(self, team_id: str, user_id: str) -> tuple[str, str]:
        team = f"team:{team_id}"
        user = f"user:{user_id}"
        parse_wallet_id(team)
        parse_wallet_id(user)
        if team_id not in self._teams:
            raise InvalidInput(
                f"team_id: {team_id!r} is not a configured team", {"field": "team_id"}
            )
        return team, user

    async def _lead_may_fund(self, user: str, team_id: str) -> bool:
        """A team lead funds only users already placed in its team: by the config (a user
        budget; then the lead's move may create the wallet) or by billing (the wallet record).
        Anything else is 409 user_not_in_team, so a lead never claims an unplaced user id.
        Returns whether only the config places it (then the move may create the wallet).
        transfer.lua re-checks the record in the same script as the move (adopt=False)."""
        recorded = await self._store.wallet_team(user)
        if self.membership(parse_wallet_id(user)[1], recorded) == team_id:
            return not recorded
        raise UserNotInTeam(
            f"{user} does not belong to team {team_id}", {"wallet": user, "team_id": team_id}
        )

    async def _transfer(
        self,
        source: str,
        destination: str,
        amount_micros: int,
        currency: str,
        description: str,
        actor: str,
        idempotency_key: str | None,
        *,
        source_team: str,
        team: str,
        create: bool | None = None,
        adopt: bool = True,
    ) -> OpResult:
        common = self._move(
            "transfer",
            amount_micros,
            currency,
            description,
            actor,
            idempotency_key,
            source=source,
            destination=destination,
        )
        try:
            return await self._store.transfer(
                source,
                destination,
                amount_micros,
                create=self._may_create(destination) if create is None else create,
                source_team=source_team,
                team=team,
                adopt=adopt,
                **common,
            )
        except StoreRefused as exc:
            self._refused(exc, amount_micros, source_team or team)

    # -- reservation lifecycle ------------------------------------------------------------------

    def _validate_reserve(self, req: ReserveRequest) -> ReserveRequest:
        _check_reservation_id(req.reservation_id)
        if not req.candidates:
            raise InvalidInput("candidates: at least one wallet is required")
        if len(set(req.candidates)) != len(req.candidates):
            raise InvalidInput("candidates: a wallet is listed twice")
        for wid in req.candidates:
            parse_wallet_id(wid)
        _check_amount(req.amount, allow_zero=True)
        if req.policy not in _POLICIES:
            raise InvalidInput("policy: must be block, warn, hold or showback")
        if isinstance(req.ttl_ms, bool) or not isinstance(req.ttl_ms, int) or req.ttl_ms <= 0:
            raise InvalidInput("ttl_ms: must be a positive integer")
        for name in ("team", "group", "user", "model"):
            _check_text(getattr(req, name), name, _MAX_LABEL)
        if req.policy in ("warn", "showback"):
            overdraft = req.overdraft_wallet or req.candidates[-1]
            parse_wallet_id(overdraft)
            if overdraft != req.overdraft_wallet:
                req = dataclasses.replace(req, overdraft_wallet=overdraft)
        elif req.overdraft_wallet is not None:
            parse_wallet_id(req.overdraft_wallet)
        return req

    async def reserve(self, req: ReserveRequest, *, actor: str = "gateway") -> ReserveResult:
        """ONE store round trip: fund from the first candidate that can pay it all, else apply
        the policy (block/hold refuse; warn/showback charge the overdraft wallet)."""
        req = self._validate_reserve(req)
        self.integrity.refuse()
        try:
            return await self._store.reserve(req, actor=actor, epoch=self.integrity.epoch)
        except StoreRegressed as exc:
            self.integrity.mark_regressed(exc.message)
            raise

    @staticmethod
    def _validate_settle(req: SettleRequest) -> SettleRequest:
        _check_reservation_id(req.reservation_id)
        _check_amount(req.cost, "cost", allow_zero=True)
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            value = getattr(req, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name}: must be a non-negative integer", {"field": name})
        _check_text(req.model, "model", _MAX_LABEL)
        _check_text(req.label_model, "label_model", _MAX_LABEL)
        return req

    async def settle(self, req: SettleRequest) -> SettleResult:
        """Close a reservation at its real cost; idempotent (a closed one says already_closed)."""
        return await self._store.settle(self._validate_settle(req))

    async def release(
        self, reservation_id: str, reason: str = "", *, abandoned: bool = False
    ) -> SettleResult:
        """Close a reservation at no cost; idempotent. `abandoned`: the compensation of a Check
        that gave up, which keeps a reservation a retried Check adopted."""
        _check_reservation_id(reservation_id)
        _check_text(reason, "reason")
        return await self._store.release(
            ReleaseRequest(reservation_id, reason), abandoned=abandoned
        )

    async def settle_batch(
        self, items: Sequence[SettleRequest | ReleaseLike]
    ) -> list[SettleResult]:
        """Many settles/releases in one pipeline. An item that fails validation is not sent and
        gets outcome `unknown` (the sweeper settles its reservation at the estimate)."""
        results: list[SettleResult | None] = []
        valid: list[SettleRequest | ReleaseLike] = []
        for item in items:
            try:
                if isinstance(item, SettleRequest):
                    self._validate_settle(item)
                else:
                    _check_reservation_id(item.reservation_id)
                    _check_text(item.reason, "reason")
            except InvalidInput:
                results.append(SettleResult("unknown", None, 0, 0))
                continue
            results.append(None)
            valid.append(item)
        stored = await self._store.settle_batch(valid)
        if any(r.outcome == "unknown" for r in stored):
            # A reservation the store does not know: a late duplicate, or a store that lost its
            # books. In the latter case nothing may be dropped: raise, so the settler keeps the
            # batch and retries it after `restore` brings the reservation back (what it did
            # settle is idempotent: a repeat answers already_closed).
            await self.integrity.check_quietly()
            self.integrity.refuse()
        sent = iter(stored)
        return [r if r is not None else next(sent) for r in results]

    async def recover(self, charge: JournaledCharge) -> SettleResult:
        """Book a journaled charge the store answered `unknown` for (its reservation died with a
        lost store; gateway/settler.py decides when that may be believed). Refused as
        `unknown` when the charge fails validation."""
        try:
            self._validate_settle(charge.settle_request())
            parse_wallet_id(charge.wallet)
        except InvalidInput:
            return SettleResult("unknown", None, 0, 0)
        return await self._store.recover(charge)

    async def expire_due(self, limit: int = 500) -> list[ExpiredReservation]:
        """Settle up to `limit` overdue reservations at their estimate (safe on every replica)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 10_000:
            raise InvalidInput("limit: must be between 1 and 10000")
        return await self._store.expire(limit)

    async def reservation(self, reservation_id: str) -> Reservation | None:
        _check_reservation_id(reservation_id)
        return await self._store.reservation(reservation_id)

    # -- reads ------------------------------------------------------------------------------------

    def _wallet(self, wallet_id: str, record: dict[str, int]) -> Wallet:
        return Wallet.build(
            wallet_id,
            low_balance_ratio=self._low_ratio,
            org_id=self.org_id,
            **record,
        )

    async def wallet(self, wallet_id: str) -> Wallet:
        parse_wallet_id(wallet_id)
        record = await self._store.wallet(wallet_id)
        if record is None:
            raise UnknownWallet(f"unknown wallet {wallet_id}", {"wallet": wallet_id})
        return self._wallet(wallet_id, record)

    async def wallets(self) -> list[Wallet]:
        """Every wallet (org first, then teams, then users), read in one pipeline."""
        records = await self._store.wallets()
        out = [self._wallet(wid, rec) for wid, rec in records.items()]
        return sorted(out, key=lambda w: (_SCOPE_ORDER[w.scope], w.id))

    async def burn_window(self, now: float | None = None) -> BurnWindow:
        """What each wallet spent over the burn window ending `now` (one store round trip)."""
        now = time.time() if now is None else now
        return BurnWindow.from_days(await self._store.burn_by_day(burn_days(now)), now)

    async def ledger(
        self, count: int = 50, before: str | None = None, wallet: str | None = None
    ) -> list[LedgerEntry]:
        """Newest first, up to `count` entries older than entry id `before`, optionally only those
        touching `wallet`."""
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= 10_000:
            raise InvalidInput("count: must be between 1 and 10000", {"field": "count"})
        if before is not None and not _is_stream_id(before):
            raise InvalidInput("before: must be a ledger entry id", {"field": "before"})
        if wallet is not None:
            parse_wallet_id(wallet)
        return await self.history.ledger(count, before=before, wallet=wallet)

    async def restore(
        self,
        archive: LedgerArchive,
        *,
        force: bool = False,
        now_ms: int | None = None,
        journal: SettlementJournal | None = None,
    ) -> RestoreReport:
        """Rebuild the store's books from the archive (wallets/restore.py) and re-arm it.
        Refuses (RestoreRefused) a store that is not regressed unless `force`, an archive with
        no history, and an archive whose own replay does not add up."""
        started = time.perf_counter()
        org = self.org_id
        verdict = await StoreIntegrity(self._store, archive).check(arm=False)
        if verdict.ok and not force:
            raise RestoreRefused(
                "the wallet store is not regressed (its books continue the archived ledger); "
                "nothing restored (--force restores anyway)",
                {"reason": "not_regressed"},
            )
        high = await archive.last_archived_id(org)
        if high is None:
            raise RestoreRefused(
                f"PostgreSQL holds no archived ledger for organization {org}: nothing to "
                "restore from",
                {"reason": "no_archive"},
            )
        plan = await plan_restore(
            org,
            archive.iter_entries(org, upto=high),
            self._store.iter_ledger(),
            high_water=high,
            tail_entries=self._config.ledger.redis_tail_entries,
            reservation_ttl_ms=self._config.enforcement.reservation_ttl_seconds * 1000,
            now_ms=now_ms,
        )
        if plan.errors:
            raise RestoreRefused(
                f"the archived ledger does not add up ({len(plan.errors)} error(s)); nothing "
                f"restored: {plan.errors[0]}",
                {"reason": "archive_inconsistent", "errors": plan.errors[:20]},
            )
        epoch = await self._store.restore_books(plan)
        # This process's own watch accepts the restored books at once (others within a round).
        await self.integrity.check_quietly()
        applied = _JournalApplied()
        if journal is not None:
            # Read after the rebuild: a settle the settler held (journaled before its first
            # attempt, refused as regressed) is in the journal by now.
            applied = await self._apply_journal(plan, journal)
        return RestoreReport(
            epoch=epoch,
            high_water=high,
            reason=verdict.reason or "forced",
            wallets=len(plan.wallets),
            open_reservations=len(plan.reservations),
            entries=plan.entries,
            archived_entries=plan.archived_entries,
            carried=plan.carried,
            rewritten=plan.rewritten,
            dropped=plan.dropped,
            tail=len(plan.tail),
            seconds=time.perf_counter() - started,
            recovered=applied.count,
            recovered_micros=applied.micros,
            journal_rows=applied.rows,
            unrecovered=applied.refused,
        )

    async def _apply_journal(
        self, plan: RestorePlan, journal: SettlementJournal
    ) -> _JournalApplied:
        """Charge what the settlement journal holds and the rebuilt books lack
        (wallets/restore.py, `match_journal`): each through the store's settle rule, idempotent
        by reservation id, so a settler retrying the same settle meanwhile charges nothing
        twice."""
        ttl_ms = self._config.enforcement.reservation_ttl_seconds * 1000
        since = plan.high_water_ts_ms - journal_lookback_ms(ttl_ms)
        try:
            rows = await journal.since(self.org_id, since)
        except Exception as exc:  # the books are rebuilt already: report it, never abort now
            return _JournalApplied(
                refused=[
                    f"the settlement journal could not be read ({type(exc).__name__}: "
                    f"{str(exc)[:200]}); run `restore --force` once it can"
                ]
            )
        match = match_journal(plan, rows)
        out = _JournalApplied(rows=len(rows))
        results = await self._store.settle_batch(
            [c.settle_request() for c in match.settle], actor="restore"
        )
        pairs = list(zip(match.settle, results, strict=True))
        for charge in match.recover:
            pairs.append((charge, await self._store.recover(charge, actor="restore")))
        for charge, result in pairs:
            if result.outcome in ("settled", "recovered"):
                out.count += 1
                out.micros += result.cost
            elif result.outcome == "unknown":
                out.refused.append(
                    f"{charge.reservation_id}: wallet {charge.wallet} is not in the restored "
                    f"books; {charge.cost} micros not charged"
                )
        return out

    async def audit(
        self, archive: LedgerArchive | None = None, *, full: bool = False
    ) -> AuditReport:
        """Replay the ledger and compare with every wallet and the deadline index: with an
        archive, from its newest checkpoint (genesis when `full`) plus the unarchived Redis tail
        (wallets/archived_audit.py); without one, the whole Redis ledger."""
        if archive is not None:
            return await audit_with_archive(
                self._store, archive, self._config.organization.id, full=full
            )
        snap = await self._store.audit_snapshot()
        replay = LedgerReplay()
        if snap.last_entry_id is not None:
            async for entry in self._store.iter_ledger(upto=snap.last_entry_id):
                replay.apply(entry)
        mismatches = compare(replay, snap.wallets, snap.deadlines)
        continuity = await self.integrity.check(arm=False)
        if not continuity.ok:
            mismatches.insert(0, f"store continuity: {continuity.reason}")
        return AuditReport(
            ok=not mismatches,
            entries=replay.entries,
            mismatches=mismatches,
            wallets=len(snap.wallets),
            open_reservations=len(snap.deadlines),
        )


@dataclasses.dataclass
class _JournalApplied:
    rows: int = 0
    count: int = 0
    micros: int = 0
    refused: list[str] = dataclasses.field(default_factory=list)


def _is_stream_id(value: str) -> bool:
    ms, sep, seq = value.partition("-")
    return ms.isdigit() and (not sep or seq.isdigit())


__all__ = ["WalletService", "fingerprint"]
