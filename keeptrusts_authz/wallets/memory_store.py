"""MemoryWalletStore: the `WalletStore` protocol in process memory, for fast domain tests.

Same semantics as the Lua scripts in store/lua (one operation = one critical section under a
lock, as one script is one atomic step in Redis): the same refusals, the same ledger entries with
the same fields (all strings, as a stream stores them), idempotency keys with their fingerprint
and 24 h lifetime, tombstones for releases that arrive before their reserve, closed reservations
kept 7 days, the deadline index and the sweeper, the usage/burn/denial counters. Never the only
proof of a rule: tests/store runs the scripts against a real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from keeptrusts_authz.errors import StoreDataError, StoreRegressed
from keeptrusts_authz.periods.models import PeriodState, RolloverOutcome
from keeptrusts_authz.wallets.models import (
    MAX_WALLET_MICROS,
    RECOVERED_FIELD,
    WALLET_FIELDS,
    AuditSnapshot,
    ExpiredReservation,
    JournaledCharge,
    LedgerEntry,
    OpResult,
    ReleaseLike,
    Reservation,
    ReserveRequest,
    ReserveResult,
    RestorePlan,
    SettleRequest,
    SettleResult,
    StoreMarker,
    TicketRecord,
    new_epoch_id,
)
from keeptrusts_authz.wallets.ports import StoreRefused, TicketConflict, TicketNotFound

IDEM_TTL_MS = 86_400_000
CLOSED_TTL_MS = 6 * 3_600_000  # enforcement.closed_reservation_ttl_seconds' default
TICKET_TTL_MS = 7 * 86_400_000
MAX_ROLLOVER = 10**15  # period_rollover.lua's MAX


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Expiring:
    fields: dict[str, str]
    expires_ms: int | None = None


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or "0")


@dataclass
class _State:
    wallets: dict[str, dict[str, int]] = field(default_factory=dict)
    ledger: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    reservations: dict[str, _Expiring] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)
    idem: dict[str, _Expiring] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    burn: dict[str, dict[str, int]] = field(default_factory=dict)
    last_id: tuple[int, int] = (0, 0)
    epoch: dict[str, str] | None = None
    # Money ever put into each wallet (FUNDED_FIELD in Redis): kept only for the 2^53 bound.
    funded: dict[str, int] = field(default_factory=dict)
    # The `team` field of user wallets (a string; the wallet records hold integers only).
    teams: dict[str, str] = field(default_factory=dict)
    # The period state hashes (`kt:{org}:pw:<wallet>`) of period_rollover.lua.
    periods: dict[str, dict[str, str]] = field(default_factory=dict)


class MemoryEvents:
    """The org's events channel in process: a publish wakes the waiters of that message at once
    (as store.tickets.EventHub does for the Redis channel)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        #: Every message published, oldest first.
        self.messages: list[str] = []

    async def ready(self, timeout: float = 2.0) -> bool:
        return True

    @contextlib.contextmanager
    def watch(self, messages: Iterable[str]) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        keys = list(messages)
        for key in keys:
            self._waiters[key].add(event)
        try:
            yield event
        finally:
            for key in keys:
                self._waiters[key].discard(event)

    def publish(self, message: str) -> None:
        self.messages.append(message)
        for event in tuple(self._waiters.get(message, ())):
            event.set()


class MemoryWalletStore:
    """Wallets, reservations and the ledger of ONE organization, in memory."""

    def __init__(
        self,
        org_id: str,
        *,
        clock: Callable[[], int] = _now_ms,
        events: MemoryEvents | None = None,
        closed_ttl_seconds: int = CLOSED_TTL_MS // 1000,
    ) -> None:
        self.org_id = org_id
        self._closed_ttl_ms = closed_ttl_seconds * 1000
        self._clock = clock
        self._lock = asyncio.Lock()
        self._s = _State()
        self.events = events or MemoryEvents()

    @property
    def published(self) -> list[str]:
        """Messages the scripts would PUBLISH on the org's events channel, oldest first."""
        return self.events.messages

    # -- plumbing -----------------------------------------------------------------------------

    def _xadd(self, now_ms: int, **fields: str) -> str:
        ms, seq = self._s.last_id
        ms, seq = (ms, seq + 1) if now_ms <= ms else (now_ms, 0)
        self._s.last_id = (ms, seq)
        entry_id = f"{ms}-{seq}"
        self._s.ledger.append((entry_id, dict(fields)))
        return entry_id

    def _live(self, table: dict[str, _Expiring], key: str, now_ms: int) -> _Expiring | None:
        item = table.get(key)
        if item is not None and item.expires_ms is not None and item.expires_ms <= now_ms:
            del table[key]
            return None
        return item

    def _create_wallet(self, wallet_id: str) -> dict[str, int]:
        return self._s.wallets.setdefault(wallet_id, dict.fromkeys(WALLET_FIELDS, 0))

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- admin moves ----------------------------------------------------------------------------

    def _replay(self, key: str | None, fingerprint: str, now_ms: int) -> OpResult | None:
        if key is None:
            return None
        prev = self._live(self._s.idem, key, now_ms)
        if prev is None:
            return None
        if prev.fields["fingerprint"] != fingerprint:
            raise StoreRefused("conflict")
        op, entry_id, *pairs = prev.fields["result"].split("\x1f")
        balances = {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        return OpResult(op=op, entry_id=entry_id, balances=balances, replayed=True)

    def _record(self, key: str | None, fingerprint: str, now_ms: int, result: OpResult) -> OpResult:
        if key is not None:
            flat = [result.op, result.entry_id]
            for wid, bal in result.balances.items():
                flat += [wid, str(bal)]
            self._s.idem[key] = _Expiring(
                {"fingerprint": fingerprint, "result": "\x1f".join(flat)}, now_ms + IDEM_TTL_MS
            )
        return result

    def _check_bound(self, wallet_id: str, fields: tuple[str, ...], delta: int) -> None:
        """store/lua/prelude.lua `over_bound`: a field that would leave +/-MAX_WALLET_MICROS."""
        record = {**self._s.wallets.get(wallet_id, {}), "funded_total": 0}
        record["funded_total"] = self._s.funded.get(wallet_id, 0)
        for name in fields:
            if abs(record.get(name, 0) + delta) > MAX_WALLET_MICROS:
                raise StoreRefused("bound", wallet_id, field=name)

    @staticmethod
    def _check_amount(amount: int) -> None:
        if amount <= 0:
            raise StoreDataError("Redis refused the command: invalid amount")

    async def credit(
        self,
        amount: int,
        *,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
    ) -> OpResult:
        async with self._lock:
            self._check_amount(amount)
            now = self._clock()
            replay = self._replay(idempotency_key, fingerprint, now)
            if replay is not None:
                return replay
            self._check_bound("org", ("balance", "allocated_total", "funded_total"), amount)
            if self._s.epoch is None:
                self._s.epoch = {"id": new_epoch_id(), "created_ms": str(now), "origin": "credit"}
            org = self._create_wallet("org")
            org["balance"] += amount
            org["allocated_total"] += amount
            self._s.funded["org"] = self._s.funded.get("org", 0) + amount
            entry_id = self._xadd(
                now,
                op="credit",
                wallet="org",
                amount=str(amount),
                ts_ms=str(now),
                actor=actor,
                description=description,
                balance_after=str(org["balance"]),
            )
            self.events.publish("funds:org")
            result = OpResult("credit", entry_id, {"org": org["balance"]}, False)
            return self._record(idempotency_key, fingerprint, now, result)

    async def _move(
        self,
        op: str,
        source: str,
        destination: str,
        amount: int,
        *,
        create: bool,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None,
        team: str = "",
        source_team: str = "",
        adopt: bool = True,
    ) -> OpResult:
        """allocate (org -> member), reclaim (member -> org), transfer (member -> member).
        `team`: a user destination must belong to it (one created here takes it, an existing one
        without a team adopts it only when `adopt`);
        `source_team`: a user source must belong to it (allocate.lua / transfer.lua)."""
        async with self._lock:
            self._check_amount(amount)
            if op == "transfer" and source == destination:
                raise StoreDataError("Redis refused the command: transfer to the same wallet")
            now = self._clock()
            replay = self._replay(idempotency_key, fingerprint, now)
            if replay is not None:
                return replay
            src = self._s.wallets.get(source)
            dst_exists = destination in self._s.wallets
            if op == "allocate":
                if not dst_exists and not create:
                    raise StoreRefused("unknown_wallet", destination)
                available = src["balance"] if src is not None else 0
            else:
                if src is None:
                    raise StoreRefused("unknown_wallet", source)
                if op == "transfer" and not dst_exists and not create:
                    raise StoreRefused("unknown_wallet", destination)
                available = src["balance"]
            source_owner = self._s.teams.get(source, "")
            if source_team and source.startswith("user:") and source_owner != source_team:
                raise StoreRefused("wrong_team", source, team=source_owner)
            if team and destination.startswith("user:") and dst_exists:
                stored = self._s.teams.get(destination)
                if stored and stored != team:
                    raise StoreRefused("wrong_team", destination, team=stored)
                if not stored and not adopt:
                    raise StoreRefused("wrong_team", destination, team="")
            if available < amount:
                raise StoreRefused("insufficient", source, available)
            # Bounds of both sides before any change, as the Lua scripts do.
            if op != "allocate":
                self._check_bound(source, ("allocated_total",), -amount)
            into = (
                ("balance",) if op == "reclaim" else ("balance", "allocated_total", "funded_total")
            )
            self._check_bound(destination, into, amount)
            if team and destination.startswith("user:"):
                self._s.teams[destination] = team
            src = self._create_wallet(source)
            dst = self._create_wallet(destination)
            src["balance"] -= amount
            dst["balance"] += amount
            if op != "allocate":
                src["allocated_total"] -= amount
            if op != "reclaim":
                dst["allocated_total"] += amount
                self._s.funded[destination] = self._s.funded.get(destination, 0) + amount
            member = destination if op == "allocate" else source
            extra = {"user_team": team} if team and destination.startswith("user:") else {}
            entry_id = self._xadd(
                now,
                op=op,
                wallet=member,
                amount=str(amount),
                ts_ms=str(now),
                actor=actor,
                description=description,
                **{"from": source, "to": destination},
                balance_after=str(self._s.wallets[member]["balance"]),
                **extra,
            )
            self.events.publish(f"funds:{destination}")
            balances = {source: src["balance"], destination: dst["balance"]}
            result = OpResult(op, entry_id, balances, False)
            return self._record(idempotency_key, fingerprint, now, result)

    async def allocate(
        self,
        target: str,
        amount: int,
        *,
        create: bool,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        team: str = "",
    ) -> OpResult:
        return await self._move(
            "allocate",
            "org",
            target,
            amount,
            create=create,
            actor=actor,
            description=description,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            team=team,
        )

    async def reclaim(
        self,
        source: str,
        amount: int,
        *,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        source_team: str = "",
    ) -> OpResult:
        return await self._move(
            "reclaim",
            source,
            "org",
            amount,
            create=True,
            actor=actor,
            description=description,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            source_team=source_team,
        )

    async def transfer(
        self,
        source: str,
        destination: str,
        amount: int,
        *,
        create: bool,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
        source_team: str = "",
        team: str = "",
        adopt: bool = True,
    ) -> OpResult:
        return await self._move(
            "transfer",
            source,
            destination,
            amount,
            create=create,
            actor=actor,
            description=description,
            fingerprint=fingerprint,
            idempotency_key=idempotency_key,
            team=team,
            source_team=source_team,
            adopt=adopt,
        )

    # -- reservation lifecycle --------------------------------------------------------------------

    def lose_everything(self) -> None:
        """What a Redis restarted without persistence looks like (store-loss tests)."""
        self._s = _State(last_id=(0, 0))

    async def marker(self, probe: str | None = None) -> StoreMarker:
        async with self._lock:
            e = self._s.epoch or {}
            ms, seq = self._s.last_id
            missing = False
            if probe and self._s.ledger:
                key = _id_key(probe)
                first = _id_key(self._s.ledger[0][0])
                missing = first <= key and all(_id_key(i) != key for i, _ in self._s.ledger)
            return StoreMarker(
                probe_missing=missing,
                epoch=e.get("id") or None,
                origin=e.get("origin", ""),
                hwm_floor=e.get("hwm_floor", "0-0"),
                last_id=f"{ms}-{seq}",
                has_data=bool(self._s.ledger or self._s.wallets),
            )

    async def arm(self, *, origin: str, hwm_floor: str = "0-0", replace: bool = False) -> str:
        async with self._lock:
            if self._s.epoch is not None and not replace:
                return self._s.epoch["id"]
            epoch = new_epoch_id()
            self._s.epoch = {
                "id": epoch,
                "created_ms": str(self._clock()),
                "origin": origin,
                "hwm_floor": hwm_floor,
            }
            return epoch

    async def restore_books(self, plan: RestorePlan) -> str:
        """restore_books of the Redis store: the plan replaces the books, one critical section."""
        async with self._lock:
            epoch = new_epoch_id()
            s = self._s
            s.wallets = {
                w: {f: rec.get(f, 0) for f in WALLET_FIELDS} for w, rec in plan.wallets.items()
            }
            s.reservations = {r: _Expiring(dict(f)) for r, f in plan.reservations.items()}
            s.deadlines = dict(plan.deadlines)
            s.usage = dict(plan.usage)
            s.burn = {d: dict(per) for d, per in plan.burn.items()}
            s.ledger = [(i, dict(f)) for i, f in plan.tail]
            if plan.tail:
                s.last_id = _id_key(plan.tail[-1][0])
            s.epoch = {
                "id": epoch,
                "created_ms": str(self._clock()),
                "origin": "restore",
                "hwm_floor": plan.high_water,
            }
            return epoch

    async def reserve(
        self, req: ReserveRequest, *, actor: str = "gateway", epoch: str = ""
    ) -> ReserveResult:
        async with self._lock:
            found = (self._s.epoch or {}).get("id", "")
            if epoch and found != epoch:
                raise StoreRegressed(
                    "the wallet store lost its books (epoch marker "
                    + ("replaced" if found else "missing")
                    + "); Checks are refused until `keeptrusts-authz restore`",
                    {"expected_epoch": epoch, "found_epoch": found},
                )
            if req.amount < 0:
                raise StoreDataError("Redis refused the command: invalid amount")
            if req.ttl_ms <= 0:
                raise StoreDataError("Redis refused the command: invalid ttl")
            for wid in req.candidates:
                if wid.startswith("user:") and wid in self._s.wallets:
                    owner = self._s.teams.get(wid)
                    if owner is None or owner != req.team:
                        return ReserveResult(
                            "foreign_user", wid, req.amount, {}, owner_team=owner or ""
                        )
            now = self._clock()
            prev = self._live(self._s.reservations, req.reservation_id, now)
            if prev is not None and "wallet" in prev.fields and prev.fields["state"] == "open":
                f = prev.fields
                f["adopted"] = "1"
                return ReserveResult("duplicate", f["wallet"], int(f["amount"]), {})
            if prev is not None:  # a tombstone, or closed: funds nothing any more
                return ReserveResult("blocked", None, req.amount, {})
            seen: dict[str, int] = {}
            funded: str | None = None
            for wid in req.candidates:
                w = self._s.wallets.get(wid)
                if w is not None:
                    seen[wid] = w["balance"]
                    if w["balance"] >= req.amount:
                        funded = wid
                        break
            outcome = "reserved"
            if funded is None:
                if req.policy in ("warn", "showback"):
                    if not req.overdraft_wallet:
                        raise StoreDataError(
                            "Redis refused the command: overdraft policy needs an overdraft wallet"
                        )
                    exists = req.overdraft_wallet in self._s.wallets
                    if exists or (req.policy == "showback" and found):
                        outcome, funded = "overdraft", req.overdraft_wallet
                if funded is None:
                    counter = "held" if req.policy == "hold" else "blocked"
                    month = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y-%m")
                    stats = self._s.stats.setdefault(month, {})
                    key = f"{req.team}|{counter}"
                    stats[key] = stats.get(key, 0) + 1
                    refused = "hold" if req.policy == "hold" else "blocked"
                    return ReserveResult(refused, None, req.amount, seen)  # type: ignore[arg-type]
            w = self._create_wallet(funded)
            w["balance"] -= req.amount
            w["reserved"] += req.amount
            deadline = now + req.ttl_ms
            overdraft = "1" if outcome == "overdraft" else "0"
            self._s.reservations[req.reservation_id] = _Expiring(
                {
                    "wallet": funded,
                    "amount": str(req.amount),
                    "state": "open",
                    "team": req.team,
                    "group": req.group,
                    "user": req.user,
                    "model": req.model,
                    "deadline_ms": str(deadline),
                    "cost": "",
                    "overdraft": overdraft,
                    "created_ms": str(now),
                }
            )
            self._s.deadlines[req.reservation_id] = deadline
            self._xadd(
                now,
                op="reserve",
                wallet=funded,
                amount=str(req.amount),
                ts_ms=str(now),
                actor=actor,
                description="",
                reservation=req.reservation_id,
                overdraft=overdraft,
                team=req.team,
                group=req.group,
                user=req.user,
                model=req.model,
                balance_after=str(w["balance"]),
            )
            return ReserveResult(outcome, funded, req.amount, seen)  # type: ignore[arg-type]

    def _closed(self, f: dict[str, str]) -> SettleResult:
        return SettleResult("already_closed", f["wallet"], int(f["amount"]), int(f["cost"] or 0))

    def _count_usage(self, team: str, group: str, est: str, label: str, cost: int) -> None:
        u = self._s.usage
        who = f"{team}|{group}|"
        for key, inc in ((f"spend|{who}{est}|{label}", cost), (f"requests|{who}{label}", 1)):
            u[key] = u.get(key, 0) + inc

    def _burn(self, now: int, wallet: str, cost: int) -> None:
        if cost != 0:
            day = datetime.fromtimestamp(now / 1000, UTC).date().isoformat()
            bucket = self._s.burn.setdefault(day, {})
            bucket[wallet] = bucket.get(wallet, 0) + cost

    def _settle(
        self, req: SettleRequest, actor: str, recover: JournaledCharge | None = None
    ) -> SettleResult:
        if req.cost < 0:
            raise StoreDataError("Redis refused the command: invalid cost")
        now = self._clock()
        item = self._live(self._s.reservations, req.reservation_id, now)
        recovered = False
        if item is None and recover is not None and recover.wallet in self._s.wallets:
            # settle.lua's recovery branch: the reservation died with a lost store.
            recovered = True
            item = self._s.reservations[req.reservation_id] = _Expiring(
                {
                    "wallet": recover.wallet,
                    "amount": "0",
                    "state": "open",
                    "team": recover.team,
                    "group": recover.group,
                    "user": recover.user,
                    "model": req.model,
                    "created_ms": str(recover.admitted_ms or ""),
                    "overdraft": "0",
                    "recovered": "1",
                }
            )
        if item is None or "wallet" not in item.fields:
            return SettleResult("unknown", None, 0, 0)
        f = item.fields
        if f["state"] in ("settled", "expired") and f.get("estimated") == "1" and not req.estimated:
            return self._correct(f, req, actor, now)
        if f["state"] != "open":
            return self._closed(f)
        wallet, reserved, cost = f["wallet"], int(f["amount"]), req.cost
        model = req.model or f["model"]
        label = req.label_model or f["model"]
        estimated = "1" if req.estimated else "0"
        w = self._create_wallet(wallet)
        w["reserved"] -= reserved
        w["balance"] += reserved - cost
        w["spent_total"] += cost
        f.update(state="settled", cost=str(cost), estimated=estimated, closed_ms=str(now))
        item.expires_ms = now + self._closed_ttl_ms
        self._s.deadlines.pop(req.reservation_id, None)
        marks = {RECOVERED_FIELD: "1"} if recovered else {}
        self._xadd(
            now,
            op="settle",
            wallet=wallet,
            amount=str(cost),
            ts_ms=str(now),
            actor=actor,
            description="recovered from the settlement journal" if recovered else "",
            reservation=req.reservation_id,
            reserved=str(reserved),
            cost=str(cost),
            estimated=estimated,
            team=f["team"],
            group=f["group"],
            user=f["user"],
            model=model,
            input_tokens=str(req.input_tokens),
            output_tokens=str(req.output_tokens),
            cached_tokens=str(req.cached_tokens),
            balance_after=str(w["balance"]),
            reserved_ms=f.get("created_ms", ""),
            label=label,
            **marks,
        )
        self._count_usage(f["team"], f["group"], estimated, label, cost)
        self._count_tokens(f, label, req)
        self._burn(now, wallet, cost)
        if reserved > cost:
            self.events.publish(f"funds:{wallet}")
        return SettleResult("recovered" if recovered else "settled", wallet, reserved, cost)

    def _count_tokens(self, f: dict[str, str], label: str, req: SettleRequest) -> None:
        who = f"{f['team']}|{f['group']}|"
        for kind, n in (
            ("input", req.input_tokens),
            ("output", req.output_tokens),
            ("cached", req.cached_tokens),
        ):
            if n > 0:
                key = f"tokens|{who}{kind}|{label}"
                self._s.usage[key] = self._s.usage.get(key, 0) + n

    def _correct(self, f: dict[str, str], req: SettleRequest, actor: str, now: int) -> SettleResult:
        """settle.lua's late-usage branch: the real cost replaces the estimate."""
        wallet, reserved, cost = f["wallet"], int(f["amount"]), req.cost
        previous = int(f["cost"] or 0)
        delta = cost - previous
        label = req.label_model or f["model"]
        w = self._create_wallet(wallet)
        w["balance"] -= delta
        w["spent_total"] += delta
        f.update(cost=str(cost), estimated="0", corrected_ms=str(now))
        self._xadd(
            now,
            op="correct",
            wallet=wallet,
            amount=str(delta),
            ts_ms=str(now),
            actor=actor,
            description="real usage replaces the estimate",
            reservation=req.reservation_id,
            reserved=str(reserved),
            previous_cost=str(previous),
            cost=str(cost),
            delta=str(delta),
            estimated="0",
            team=f["team"],
            group=f["group"],
            user=f["user"],
            model=req.model or f["model"],
            input_tokens=str(req.input_tokens),
            output_tokens=str(req.output_tokens),
            cached_tokens=str(req.cached_tokens),
            balance_after=str(w["balance"]),
            label=label,
        )
        u = self._s.usage
        who = f"{f['team']}|{f['group']}|"
        for key, inc in ((f"spend|{who}1|{label}", -previous), (f"spend|{who}0|{label}", cost)):
            u[key] = u.get(key, 0) + inc
        self._count_tokens(f, label, req)
        self._burn(now, wallet, delta)
        if delta < 0:
            self.events.publish(f"funds:{wallet}")
        return SettleResult("corrected", wallet, reserved, cost)

    def _release(self, req: ReleaseLike, actor: str, abandoned: bool = False) -> SettleResult:
        now = self._clock()
        item = self._live(self._s.reservations, req.reservation_id, now)
        if item is None or "wallet" not in item.fields:
            # A tombstone: a reserve arriving after its release refuses the id.
            self._s.reservations[req.reservation_id] = _Expiring(
                {"state": "released", "tombstone": "1"}, now + self._closed_ttl_ms
            )
            return SettleResult("unknown", None, 0, 0)
        f = item.fields
        if f["state"] != "open" or (abandoned and f.get("adopted") == "1"):
            return self._closed(f)
        wallet, reserved = f["wallet"], int(f["amount"])
        w = self._create_wallet(wallet)
        w["reserved"] -= reserved
        w["balance"] += reserved
        f.update(state="released", cost="0", closed_ms=str(now))
        item.expires_ms = now + self._closed_ttl_ms
        self._s.deadlines.pop(req.reservation_id, None)
        self._xadd(
            now,
            op="release",
            wallet=wallet,
            amount=str(reserved),
            ts_ms=str(now),
            actor=actor,
            description=req.reason,
            reservation=req.reservation_id,
            reserved=str(reserved),
            cost="0",
            team=f["team"],
            group=f["group"],
            user=f["user"],
            model=f["model"],
            balance_after=str(w["balance"]),
        )
        if reserved > 0:
            self.events.publish(f"funds:{wallet}")
        return SettleResult("released", wallet, reserved, 0)

    async def settle(self, req: SettleRequest, *, actor: str = "gateway") -> SettleResult:
        async with self._lock:
            return self._settle(req, actor)

    async def recover(self, charge: JournaledCharge, *, actor: str = "gateway") -> SettleResult:
        async with self._lock:
            return self._settle(charge.settle_request(), actor, charge)

    async def release(
        self, req: ReleaseLike, *, actor: str = "gateway", abandoned: bool = False
    ) -> SettleResult:
        async with self._lock:
            return self._release(req, actor, abandoned)

    async def settle_batch(
        self, items: Sequence[SettleRequest | ReleaseLike], *, actor: str = "gateway"
    ) -> list[SettleResult]:
        """Each item is its own atomic step, as each is its own EVALSHA in the Redis pipeline."""
        out = []
        for item in items:
            async with self._lock:
                if isinstance(item, SettleRequest):
                    out.append(self._settle(item, actor))
                else:
                    out.append(self._release(item, actor))
        return out

    async def expire(self, limit: int, *, actor: str = "sweeper") -> list[ExpiredReservation]:
        async with self._lock:
            if limit <= 0:
                raise StoreDataError("Redis refused the command: invalid limit")
            now = self._clock()
            due = sorted((d, rid) for rid, d in self._s.deadlines.items() if d <= now)[:limit]
            out = []
            for _, rid in due:
                del self._s.deadlines[rid]
                item = self._live(self._s.reservations, rid, now)
                if item is None or item.fields.get("state") != "open":
                    continue
                f = item.fields
                wallet, reserved = f["wallet"], int(f["amount"])
                w = self._create_wallet(wallet)
                w["reserved"] -= reserved
                w["spent_total"] += reserved
                f.update(state="expired", cost=str(reserved), estimated="1", closed_ms=str(now))
                item.expires_ms = now + self._closed_ttl_ms
                self._xadd(
                    now,
                    op="expire",
                    wallet=wallet,
                    amount=str(reserved),
                    ts_ms=str(now),
                    actor=actor,
                    description="reservation deadline passed",
                    reservation=rid,
                    reserved=str(reserved),
                    cost=str(reserved),
                    estimated="1",
                    team=f["team"],
                    group=f["group"],
                    user=f["user"],
                    model=f["model"],
                    balance_after=str(w["balance"]),
                    reserved_ms=f.get("created_ms", ""),
                )
                self._count_usage(f["team"], f["group"], "1", f["model"], reserved)
                self._burn(now, wallet, reserved)
                out.append(ExpiredReservation(rid, wallet, reserved))
            return out

    # -- reads ---------------------------------------------------------------------------------

    async def wallet(self, wallet_id: str) -> dict[str, int] | None:
        async with self._lock:
            w = self._s.wallets.get(wallet_id)
            return dict(w) if w is not None else None

    async def wallet_ids(self) -> set[str]:
        async with self._lock:
            return set(self._s.wallets)

    async def wallets(self) -> dict[str, dict[str, int]]:
        async with self._lock:
            return {wid: dict(self._s.wallets[wid]) for wid in sorted(self._s.wallets)}

    async def wallet_team(self, wallet_id: str) -> str:
        async with self._lock:
            return self._s.teams.get(wallet_id, "") if wallet_id in self._s.wallets else ""

    async def wallet_teams(self) -> dict[str, str]:
        async with self._lock:
            return {
                wid: self._s.teams.get(wid, "")
                for wid in sorted(self._s.wallets)
                if wid.startswith("user:")
            }

    # -- budget periods (period_rollover.lua) ---------------------------------------------------

    async def apply_period_boundary(
        self,
        wallet_id: str,
        period_id: str,
        *,
        rollover: str,
        amount: int,
        carry_cap: int,
        period_start_ms: int,
        actor: str,
        description: str,
        team: str = "",
    ) -> RolloverOutcome:
        """One boundary of one wallet, at most once per (wallet, period id): the semantics of
        period_rollover.lua (the same policy table, refusals and ledger fields)."""
        async with self._lock:
            if not 0 < amount <= MAX_ROLLOVER:
                raise StoreDataError("Redis refused the command: invalid amount")
            if not 0 <= carry_cap <= MAX_ROLLOVER:
                raise StoreDataError("Redis refused the command: invalid carry cap")
            state = self._s.periods.get(wallet_id)
            if state is not None:
                if state["period"] == period_id:
                    return RolloverOutcome("replayed", entry_id=state["entry"])
                if state["period"] > period_id:
                    return RolloverOutcome("stale", applied_period=state["period"])
            w = self._s.wallets.get(wallet_id)
            user_budget = bool(team) and wallet_id.startswith("user:")
            recorded = self._s.teams.get(wallet_id, "") if w is not None else ""
            if user_budget and recorded and recorded != team:
                return RolloverOutcome("wrong_team", recorded_team=recorded)
            b = w["balance"] if w is not None else 0
            spent = w["spent_total"] if w is not None else 0
            pos, debt = max(b, 0), max(-b, 0)
            if rollover == "reset":
                carried, returned, forgiven = 0, pos, debt
            elif rollover == "carry":
                carried, returned, forgiven = pos, 0, debt
            elif rollover == "carry_capped":
                carried = min(pos, carry_cap)
                returned, forgiven = pos - carried, debt
            elif rollover == "carry_debt":
                carried, returned, forgiven = b, 0, 0
            else:
                raise StoreDataError("Redis refused the command: invalid rollover")
            delta = amount - returned + forgiven
            org = self._s.wallets.get("org")
            org_bal = org["balance"] if org is not None else 0
            if delta > org_bal:
                return RolloverOutcome("insufficient", org_balance=org_bal, delta=delta)
            now = self._clock()
            org = self._create_wallet("org")
            target = self._create_wallet(wallet_id)
            if user_budget:
                self._s.teams[wallet_id] = team
            org["balance"] -= delta
            target["balance"] += delta
            target["allocated_total"] += delta
            entry_id = self._xadd(
                now,
                op="period_rollover",
                wallet=wallet_id,
                amount=str(amount),
                ts_ms=str(now),
                actor=actor,
                description=description,
                **{"from": "org", "to": wallet_id},
                period=period_id,
                period_start_ms=str(period_start_ms),
                rollover=rollover,
                delta=str(delta),
                carried_in=str(carried),
                returned=str(returned),
                forgiven=str(forgiven),
                balance_after=str(target["balance"]),
                **({"user_team": team} if user_budget else {}),
            )
            self._s.periods[wallet_id] = {
                "period": period_id,
                "entry": entry_id,
                "allocation": str(amount),
                "carried_in": str(carried),
                "returned": str(returned),
                "forgiven": str(forgiven),
                "applied_ms": str(now),
                "spent_at_start": str(spent),
                "rollover": rollover,
            }
            if delta > 0:
                self.events.publish(f"funds:{wallet_id}")
            return RolloverOutcome(
                "applied",
                entry_id=entry_id,
                delta=delta,
                balance_after=target["balance"],
                org_balance=org["balance"],
            )

    async def period_states(self, wallet_ids: Sequence[str]) -> dict[str, PeriodState]:
        async with self._lock:
            out: dict[str, PeriodState] = {}
            for wid in wallet_ids:
                raw = self._s.periods.get(wid)
                if raw:
                    out[wid] = PeriodState(
                        wallet_id=wid,
                        period_id=raw["period"],
                        entry_id=raw["entry"],
                        rollover=raw["rollover"],
                        allocation=int(raw["allocation"]),
                        carried_in=int(raw["carried_in"]),
                        returned=int(raw["returned"]),
                        forgiven=int(raw["forgiven"]),
                        applied_ms=int(raw["applied_ms"]),
                        spent_at_start=int(raw["spent_at_start"]),
                    )
            return out

    async def reservation(self, reservation_id: str) -> Reservation | None:
        async with self._lock:
            item = self._live(self._s.reservations, reservation_id, self._clock())
            if item is None:
                return None
            raw = item.fields
            cost = raw.get("cost", "")
            return Reservation(
                id=reservation_id,
                wallet=raw.get("wallet", ""),
                amount=int(raw.get("amount") or 0),
                state=raw.get("state", "open"),  # type: ignore[arg-type]
                team=raw.get("team", ""),
                group=raw.get("group", ""),
                user=raw.get("user", ""),
                model=raw.get("model", ""),
                deadline_ms=int(raw.get("deadline_ms") or 0),
                cost=int(cost) if cost else None,
                overdraft=raw.get("overdraft") == "1",
                estimated=raw.get("estimated") == "1",
            )

    @staticmethod
    def _entry(entry_id: str, fields: dict[str, str]) -> LedgerEntry:
        return LedgerEntry(
            id=entry_id,
            ts_ms=int(fields.get("ts_ms") or 0),
            op=fields.get("op", ""),
            wallet=fields.get("wallet", ""),
            amount=int(fields.get("amount") or 0),
            fields=dict(fields),
        )

    async def ledger_length(self) -> int:
        return len(self._s.ledger)

    async def ledger(
        self,
        count: int,
        *,
        before: str | None = None,
        wallet: str | None = None,
        scan_limit: int = 100_000,
    ) -> list[LedgerEntry]:
        async with self._lock:
            rows = list(reversed(self._s.ledger))
        if before is not None:
            bound = _stream_id(before)
            rows = [r for r in rows if _stream_id(r[0]) < bound]
        out = []
        for entry_id, fields in rows[:scan_limit]:
            entry = self._entry(entry_id, fields)
            touches = wallet in (entry.wallet, fields.get("from"), fields.get("to"))
            if wallet is None or touches:
                out.append(entry)
                if len(out) == count:
                    break
        return out

    async def iter_ledger(
        self, upto: str | None = None, batch: int = 5000
    ) -> AsyncIterator[LedgerEntry]:
        async with self._lock:
            rows = list(self._s.ledger)
        bound = _stream_id(upto) if upto is not None else None
        for entry_id, fields in rows:
            if bound is not None and _stream_id(entry_id) > bound:
                return
            yield self._entry(entry_id, fields)

    async def audit_snapshot(self, attempts: int = 50) -> AuditSnapshot:
        async with self._lock:
            last = self._s.ledger[-1][0] if self._s.ledger else None
            wallets = {wid: dict(w) for wid, w in self._s.wallets.items()}
            return AuditSnapshot(wallets, last, dict(self._s.deadlines))

    async def burn_by_day(self, days: Sequence[str]) -> dict[str, dict[str, int]]:
        async with self._lock:
            return {day: dict(self._s.burn.get(day, {})) for day in days}

    async def denial_counters(self, month: str | None = None) -> dict[str, int]:
        month = month or datetime.fromtimestamp(self._clock() / 1000, UTC).strftime("%Y-%m")
        async with self._lock:
            return dict(self._s.stats.get(month, {}))

    # -- test inspection -------------------------------------------------------------------------

    def usage_counters(self) -> dict[str, int]:
        return dict(self._s.usage)

    def burn(self, day: str) -> dict[str, int]:
        return dict(self._s.burn.get(day, {}))


class MemoryTicketStore:
    """Cost tickets of ONE organization in memory (`TicketStore`), sharing `events` with the
    wallet store so a move that funds a wallet wakes the held requests."""

    def __init__(self, events: MemoryEvents, *, clock: Callable[[], int] = _now_ms) -> None:
        self.events = events
        self._clock = clock
        self._tickets: dict[str, tuple[TicketRecord, int]] = {}

    def _live(self, ticket_id: str) -> TicketRecord | None:
        item = self._tickets.get(ticket_id)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._tickets[ticket_id]
            return None
        return item[0]

    async def open(
        self,
        *,
        team: str,
        group: str,
        model: str,
        user: str,
        amount: int,
        candidates: Iterable[str],
        overdraft: str,
    ) -> TicketRecord:
        now = self._clock()
        record = TicketRecord(
            id="tk_" + uuid.uuid4().hex[:24],
            status="pending",
            team=team,
            group=group,
            model=model,
            user=user,
            amount=amount,
            created_ms=now,
            waiting=True,
            decided_by="",
            decided_ms=0,
            reason="",
            funding="",
            candidates=tuple(candidates),
            overdraft=overdraft,
        )
        self._tickets[record.id] = (record, now + TICKET_TTL_MS)
        return record

    async def get(self, ticket_id: str) -> TicketRecord | None:
        return self._live(ticket_id)

    async def list(self, limit: int = 500) -> list[TicketRecord]:
        live = [t for t in (self._live(tid) for tid in list(self._tickets)) if t is not None]
        return sorted(live, key=lambda t: t.created_ms, reverse=True)[:limit]

    async def transition(
        self, ticket_id: str, allowed: Iterable[str], new: str, *, publish: bool, **fields: str
    ) -> TicketRecord:
        current = self._live(ticket_id)
        if current is None:
            raise TicketNotFound(ticket_id)
        if current.status not in set(allowed):
            raise TicketConflict(current.status)
        typed: dict[str, object] = dict(fields)
        if "decided_ms" in fields:
            typed["decided_ms"] = int(fields["decided_ms"] or 0)
        if "amount" in fields:
            typed["amount"] = int(fields["amount"] or 0)
        if "waiting" in fields:
            typed["waiting"] = fields["waiting"] == "1"
        updated = replace(current, status=new, **typed)  # type: ignore[arg-type]
        self._tickets[ticket_id] = (updated, self._tickets[ticket_id][1])
        if publish:
            self.events.publish(f"ticket:{ticket_id}")
        return updated

    async def set_waiting(self, ticket_id: str, waiting: bool) -> None:
        current = self._live(ticket_id)
        if current is not None:
            self._tickets[ticket_id] = (
                replace(current, waiting=waiting),
                self._clock() + TICKET_TTL_MS,
            )


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


__all__ = ["MemoryEvents", "MemoryTicketStore", "MemoryWalletStore"]
