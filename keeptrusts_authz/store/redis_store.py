"""RedisWalletStore: the storage layer. Runs the Lua scripts in `lua/` and reads wallets, the
ledger stream and reservations. Returns domain dataclasses; no Redis type leaks out.

Every money movement is one EVALSHA of one script that changes the balances AND appends the ledger
entry (and, when money arrives in a wallet, publishes `funds:<wallet>` on the org's events
channel to wake held requests: see store/tickets.py). Scripts are registered once here
(redis-py re-loads them on NOSCRIPT).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from importlib import resources
from typing import Any, TypeVar, cast

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ReadOnlyError, WatchError

from keeptrusts_authz.config.models import RedisSettings
from keeptrusts_authz.errors import StoreDataError, StoreRegressed, StoreUnavailable
from keeptrusts_authz.periods.models import PeriodState, RolloverOutcome
from keeptrusts_authz.store.connection import (
    AsyncClient,
    MasterWatch,
    cluster_gate,
    connect,
    describe,
)
from keeptrusts_authz.store.errors import (
    is_transient,
    store_int,
    translate,
    translated,
    translated_pipeline,
    unavailable,
)
from keeptrusts_authz.store.keys import Keys
from keeptrusts_authz.wallets.models import (
    BURN_TTL_MS,
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
    new_epoch_id,
)
from keeptrusts_authz.wallets.ports import StoreRefused

T = TypeVar("T")
Arg = str | int

SCRIPT_NAMES = (
    "credit",
    "allocate",
    "reclaim",
    "transfer",
    "reserve",
    "settle",
    "release",
    "expire",
    "period_rollover",
)
#: Default of `enforcement.closed_reservation_ttl_seconds`.
DEFAULT_CLOSED_TTL_SECONDS = 6 * 3600
log = logging.getLogger(__name__)


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream id `ms-seq` as a sortable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or "0")


_RESERVE_OUTCOMES = ("reserved", "overdraft", "blocked", "hold", "duplicate")
_SETTLE_OUTCOMES = ("settled", "corrected", "released", "already_closed", "unknown", "recovered")


def _lua_file(name: str) -> str:
    return (
        resources.files("keeptrusts_authz.store").joinpath("lua", f"{name}.lua").read_text("utf-8")
    )


def load_script_text(name: str) -> str:
    """The script `lua/<name>.lua` (package data) after the shared `lua/prelude.lua`."""
    return _lua_file("prelude") + _lua_file(name)


def _wallet_record(raw: dict[str, str]) -> dict[str, int]:
    return {f: store_int(raw.get(f)) for f in WALLET_FIELDS}


def _entry(entry_id: str, fields: dict[str, str]) -> LedgerEntry:
    return LedgerEntry(
        id=entry_id,
        ts_ms=store_int(fields.get("ts_ms")),
        op=fields.get("op", ""),
        wallet=fields.get("wallet", ""),
        amount=store_int(fields.get("amount")),
        fields=dict(fields),
    )


def _endpoint_of(client: AsyncClient) -> str:
    """host:port of a client, for error messages (never credentials)."""
    try:
        kwargs = cast(dict[str, Any], client.get_connection_kwargs())
    except AttributeError:
        return "redis"
    host, port = kwargs.get("host"), kwargs.get("port")
    return f"{host}:{port}" if host else "redis"


def _touches(entry: LedgerEntry, wallet: str) -> bool:
    f = entry.fields
    return entry.wallet == wallet or f.get("from") == wallet or f.get("to") == wallet


class RedisWalletStore:
    """Wallets, reservations and the ledger of ONE organization in Redis."""

    def __init__(
        self,
        client: AsyncClient,
        org_id: str,
        *,
        endpoint: str | None = None,
        closed_ttl_seconds: int = DEFAULT_CLOSED_TTL_SECONDS,
        master_watch: MasterWatch | None = None,
        gate_timeout: float = 1.0,
    ) -> None:
        self._client = client
        self._gate = cluster_gate(client, gate_timeout)
        # Told about every write a master refused for want of replicas or for being a replica:
        # the master may have moved (sentinel failover), so ask the Sentinels now.
        self._master_watch = master_watch
        # Closed reservation hashes and release tombstones live this long: long enough for a
        # late access-log entry or a retried Check of the same id to find them, no longer.
        self._closed_ttl_ms = closed_ttl_seconds * 1000
        self.keys = Keys(org_id)
        self.org_id = org_id
        self._endpoint = endpoint or _endpoint_of(client)
        self._scripts = {n: client.register_script(load_script_text(n)) for n in SCRIPT_NAMES}

    @classmethod
    def from_settings(cls, settings: RedisSettings, org_id: str) -> RedisWalletStore:
        return cls(connect(settings), org_id, endpoint=describe(settings))

    # -- plumbing -----------------------------------------------------------------------------

    async def _io(self, awaitable: Awaitable[T]) -> T:
        """Await a Redis call with its exceptions translated (store.errors); through a cluster
        client, behind its gate (a burst waits for a connection instead of being refused)."""
        try:
            with translated(self._endpoint):
                if self._gate is None:
                    return await awaitable
                async with self._gate:
                    return await awaitable
        except StoreUnavailable as exc:
            self._refused_write(exc.__cause__)
            raise

    def _refused_write(self, exc: object) -> None:
        """A master refusing writes for want of replicas, or a replica: the master may have
        moved (Sentinel failover), so the watch asks the Sentinels now."""
        if self._master_watch is not None and (
            isinstance(exc, ReadOnlyError)
            or str(exc).lstrip("-").startswith(("NOREPLICAS", "READONLY"))
        ):
            self._master_watch.nudge()

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> list[Any]:
        result = await self._io(self._scripts[name](keys=list(keys), args=list(args)))
        if not isinstance(result, list):
            raise StoreDataError(f"{name}.lua returned {type(result).__name__}")
        return result

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        await self._io(cast(Awaitable[Any], self._client.ping()))

    # -- admin moves ----------------------------------------------------------------------------

    async def _admin(
        self,
        op: str,
        keys: list[str],
        args: list[Arg],
        idempotency_key: str | None,
        fingerprint: str,
    ) -> OpResult:
        # Without a caller key an internal one still makes a client-side retry of the same call
        # (after a lost reply) a replay instead of a second move.
        idem = idempotency_key or f"auto.{uuid.uuid4().hex}"
        res = await self._run(
            op,
            [self.keys.ledger, self.keys.wallets, self.keys.idem(idem), *keys],
            ["1", fingerprint, *args],
        )
        status = str(res[0])
        if status in ("ok", "replayed"):
            balances = {str(res[i]): store_int(res[i + 1]) for i in range(2, len(res) - 1, 2)}
            return OpResult(
                op=op,
                entry_id=str(res[1]),
                balances=balances,
                replayed=status == "replayed" and idempotency_key is not None,
            )
        if status == "conflict":
            raise StoreRefused("conflict")
        if status == "unknown_wallet":
            raise StoreRefused("unknown_wallet", str(res[1]))
        if status == "insufficient":
            raise StoreRefused("insufficient", str(res[1]), store_int(res[2]))
        if status == "bound":
            raise StoreRefused("bound", str(res[1]), field=str(res[2]))
        if status == "wrong_team":
            raise StoreRefused("wrong_team", str(res[1]), team=str(res[2]))
        raise StoreDataError(f"{op}.lua returned {status!r}")

    async def credit(
        self,
        amount: int,
        *,
        actor: str,
        description: str,
        fingerprint: str,
        idempotency_key: str | None = None,
    ) -> OpResult:
        return await self._admin(
            "credit",
            [self.keys.wallet("org"), self.keys.epoch],
            [amount, actor, description, self.keys.events_channel, new_epoch_id()],
            idempotency_key,
            fingerprint,
        )

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
        return await self._admin(
            "allocate",
            [self.keys.wallet("org"), self.keys.wallet(target)],
            [
                amount,
                actor,
                description,
                target,
                "1" if create else "0",
                self.keys.events_channel,
                team,
            ],
            idempotency_key,
            fingerprint,
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
        return await self._admin(
            "reclaim",
            [self.keys.wallet(source), self.keys.wallet("org")],
            [amount, actor, description, source, self.keys.events_channel, source_team],
            idempotency_key,
            fingerprint,
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
        return await self._admin(
            "transfer",
            [self.keys.wallet(source), self.keys.wallet(destination)],
            [
                amount,
                actor,
                description,
                source,
                destination,
                "1" if create else "0",
                self.keys.events_channel,
                source_team,
                team,
                "1" if adopt else "0",
            ],
            idempotency_key,
            fingerprint,
        )

    # -- reservation lifecycle --------------------------------------------------------------------

    def _reserve_call(
        self, req: ReserveRequest, actor: str, epoch: str
    ) -> tuple[list[str], list[Arg]]:
        k = self.keys
        keys = [k.ledger, k.reservation(req.reservation_id), k.deadlines, k.wallets, k.stats()]
        keys.append(k.epoch)
        keys += [k.wallet(w) for w in req.candidates]
        overdraft = req.overdraft_wallet or ""
        if overdraft:
            keys.append(k.wallet(overdraft))
        args: list[Arg] = [
            req.reservation_id,
            req.amount,
            req.policy,
            req.ttl_ms,
            req.team,
            req.group,
            req.user,
            req.model,
            overdraft,
            len(req.candidates),
            *req.candidates,
            actor,
            epoch,
        ]
        return keys, args

    async def reserve(
        self, req: ReserveRequest, *, actor: str = "gateway", epoch: str = ""
    ) -> ReserveResult:
        """`epoch`: the marker id the caller saw ('' = none yet); a missing or different marker
        raises StoreRegressed and reserves nothing."""
        keys, args = self._reserve_call(req, actor, epoch)
        res = await self._run("reserve", keys, args)
        outcome = str(res[0])
        if outcome == "regressed":
            found = str(res[1]) if len(res) > 1 else ""
            raise StoreRegressed(
                "the wallet store lost its books (epoch marker "
                + ("missing" if not found else "replaced")
                + "); Checks are refused until `keeptrusts-authz restore`",
                {"expected_epoch": epoch, "found_epoch": found},
            )
        if outcome == "foreign_user":
            return ReserveResult(
                "foreign_user", str(res[1]), req.amount, {}, owner_team=str(res[2])
            )
        if outcome not in _RESERVE_OUTCOMES:
            raise StoreDataError(f"reserve.lua returned {outcome!r}")
        seen = {str(res[i]): store_int(res[i + 1]) for i in range(3, len(res) - 1, 2)}
        return ReserveResult(
            outcome=outcome,  # type: ignore[arg-type]
            wallet=str(res[1]) or None,
            amount=store_int(res[2]),
            seen=seen,
        )

    def _settle_call(
        self, req: SettleRequest, actor: str, recover: JournaledCharge | None = None
    ) -> tuple[list[str], list[Arg]]:
        k = self.keys
        extra: list[Arg] = []
        if recover is not None:
            extra = [
                recover.wallet,
                recover.team,
                recover.group,
                recover.user,
                str(recover.admitted_ms or ""),
            ]
        return (
            [k.ledger, k.reservation(req.reservation_id), k.deadlines, k.usage],
            [
                req.reservation_id,
                k.wallet_prefix,
                req.cost,
                "1" if req.estimated else "0",
                req.input_tokens,
                req.output_tokens,
                req.cached_tokens,
                req.model,
                actor,
                req.label_model,
                k.burn_prefix,
                k.events_channel,
                self._closed_ttl_ms,
                *extra,
            ],
        )

    def _release_call(
        self, req: ReleaseLike, actor: str, abandoned: bool = False
    ) -> tuple[list[str], list[Arg]]:
        k = self.keys
        return (
            [k.ledger, k.reservation(req.reservation_id), k.deadlines],
            [
                req.reservation_id,
                k.wallet_prefix,
                req.reason,
                actor,
                k.events_channel,
                self._closed_ttl_ms,
                "1" if abandoned else "",
            ],
        )

    @staticmethod
    def _settle_result(res: object) -> SettleResult:
        if not isinstance(res, list) or len(res) < 4 or str(res[0]) not in _SETTLE_OUTCOMES:
            raise StoreDataError(f"settle/release returned {str(res)[:80]!r}")
        return SettleResult(
            outcome=str(res[0]),  # type: ignore[arg-type]
            wallet=str(res[1]) or None,
            reserved=store_int(res[2]),
            cost=store_int(res[3]),
        )

    async def settle(self, req: SettleRequest, *, actor: str = "gateway") -> SettleResult:
        keys, args = self._settle_call(req, actor)
        return self._settle_result(await self._run("settle", keys, args))

    async def recover(self, charge: JournaledCharge, *, actor: str = "gateway") -> SettleResult:
        """settle.lua's recovery branch (its header): a journaled charge of a reservation the
        store does not know, booked once."""
        keys, args = self._settle_call(charge.settle_request(), actor, charge)
        return self._settle_result(await self._run("settle", keys, args))

    async def release(
        self, req: ReleaseLike, *, actor: str = "gateway", abandoned: bool = False
    ) -> SettleResult:
        keys, args = self._release_call(req, actor, abandoned)
        return self._settle_result(await self._run("release", keys, args))

    async def settle_batch(
        self, items: Sequence[SettleRequest | ReleaseLike], *, actor: str = "gateway"
    ) -> list[SettleResult]:
        """Many settles/releases in ONE pipeline (not a transaction: each is its own EVALSHA)."""
        if not items:
            return []
        calls = []
        for item in items:
            if isinstance(item, SettleRequest):
                calls.append((self._scripts["settle"], *self._settle_call(item, actor)))
            else:
                calls.append((self._scripts["release"], *self._release_call(item, actor)))
        if isinstance(self._client, RedisCluster):
            # One slot per org, but the cluster pipeline does not load scripts: call each.
            results: list[Any] = []
            for script, keys, args in calls:
                results.append(await self._io(script(keys=keys, args=args)))
        else:
            # Not a cluster client: opening its pipeline does no I/O.
            async with self._client.pipeline(transaction=False) as pipe:
                for script, keys, args in calls:
                    await script(keys=keys, args=args, client=pipe)
                results = await self._io(pipe.execute(raise_on_error=False))
        # A passing failure anywhere -> the whole batch is sent again (settles are idempotent).
        for res in results:
            if isinstance(res, BaseException) and is_transient(res):
                self._refused_write(res)
                raise unavailable(self._endpoint, res) from res
        out = []
        for item, res in zip(items, results, strict=True):
            if isinstance(res, Exception):
                # This one item is bad; the others stand. Its reservation stays open and the
                # sweeper settles it at its estimate.
                log.error("settle of %s refused by Redis: %s", item.reservation_id, str(res)[:200])
                out.append(SettleResult("unknown", None, 0, 0))
                continue
            out.append(self._settle_result(res))
        return out

    async def expire(self, limit: int, *, actor: str = "sweeper") -> list[ExpiredReservation]:
        k = self.keys
        res = await self._run(
            "expire",
            [k.ledger, k.deadlines, k.usage],
            [
                k.reservation_prefix,
                k.wallet_prefix,
                limit,
                actor,
                k.burn_prefix,
                self._closed_ttl_ms,
            ],
        )
        return [
            ExpiredReservation(
                reservation_id=str(res[i]), wallet=str(res[i + 1]), amount=store_int(res[i + 2])
            )
            for i in range(0, len(res) - 2, 3)
        ]

    # -- budget periods -----------------------------------------------------------------------

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
        """One boundary of one wallet (period_rollover.lua): applied, replayed, stale or refused."""
        res = await self._run(
            "period_rollover",
            [
                self.keys.ledger,
                self.keys.wallets,
                self.keys.wallet("org"),
                self.keys.wallet(wallet_id),
                self.keys.period_state(wallet_id),
            ],
            [
                wallet_id,
                period_id,
                rollover,
                amount,
                carry_cap,
                actor,
                description,
                self.keys.events_channel,
                period_start_ms,
                team,
            ],
        )
        status = str(res[0])
        if status == "applied":
            return RolloverOutcome(
                "applied",
                entry_id=str(res[1]),
                delta=store_int(res[2]),
                balance_after=store_int(res[3]),
                org_balance=store_int(res[4]),
            )
        if status == "replayed":
            return RolloverOutcome("replayed", entry_id=str(res[1]))
        if status == "stale":
            return RolloverOutcome("stale", applied_period=str(res[1]))
        if status == "insufficient":
            return RolloverOutcome(
                "insufficient", org_balance=store_int(res[1]), delta=store_int(res[2])
            )
        if status == "wrong_team":
            return RolloverOutcome("wrong_team", recorded_team=str(res[1]))
        raise StoreDataError(f"period_rollover.lua returned {status!r}")

    async def period_states(self, wallet_ids: Sequence[str]) -> dict[str, PeriodState]:
        """The last applied period of each wallet that has one (one pipeline)."""
        if not wallet_ids:
            return {}
        async with translated_pipeline(self._client, self._endpoint, transaction=False) as pipe:
            for wid in wallet_ids:
                pipe.hgetall(self.keys.period_state(wid))
            raws = await self._io(pipe.execute())
        out: dict[str, PeriodState] = {}
        for wid, raw in zip(wallet_ids, raws, strict=True):
            if raw and raw.get("period"):
                out[wid] = PeriodState(
                    wallet_id=wid,
                    period_id=raw["period"],
                    entry_id=raw.get("entry", ""),
                    rollover=raw.get("rollover", ""),
                    allocation=store_int(raw.get("allocation")),
                    carried_in=store_int(raw.get("carried_in")),
                    returned=store_int(raw.get("returned")),
                    forgiven=store_int(raw.get("forgiven")),
                    applied_ms=store_int(raw.get("applied_ms")),
                    spent_at_start=store_int(raw.get("spent_at_start")),
                )
        return out

    # -- store continuity ------------------------------------------------------------------------

    async def marker(self, probe: str | None = None) -> StoreMarker:
        """The epoch marker, the stream's last generated id (kept by Redis even when the stream
        is trimmed) and whether any wallet or entry exists, in one pipeline; with `probe`, whether
        that entry is gone while the stream still starts at or before it (rolled back)."""
        k = self.keys
        async with translated_pipeline(self._client, self._endpoint, transaction=False) as pipe:
            pipe.hgetall(k.epoch)
            pipe.xinfo_stream(k.ledger)
            pipe.scard(k.wallets)
            if probe:
                pipe.xrange(k.ledger, min=probe, max=probe, count=1)
            res = await self._io(pipe.execute(raise_on_error=False))
        raw, info, n_wallets = res[:3]
        probe_missing = False
        if probe and isinstance(info, dict) and isinstance(res[3], list) and not res[3]:
            first = info.get("first-entry")
            if first:
                probe_missing = _id_key(str(first[0])) <= _id_key(probe)
        for part in (raw, n_wallets):
            if isinstance(part, BaseException):
                raise translate(part, self._endpoint) or StoreDataError(str(part)[:200]) from part
        last_id, length = "0-0", 0
        if isinstance(info, dict):
            last_id = str(info.get("last-generated-id") or "0-0")
            length = int(info.get("length") or 0)
        elif isinstance(info, BaseException) and is_transient(info):
            # (any other error is "ERR no such key": no ledger stream at all)
            raise unavailable(self._endpoint, info) from info
        wallets = n_wallets if isinstance(n_wallets, int) else 0
        return StoreMarker(
            epoch=raw.get("id") or None,
            origin=raw.get("origin", ""),
            hwm_floor=raw.get("hwm_floor", "0-0"),
            last_id=last_id,
            has_data=length > 0 or wallets > 0,
            probe_missing=probe_missing,
        )

    async def arm(self, *, origin: str, hwm_floor: str = "0-0", replace: bool = False) -> str:
        """Write the epoch marker (a new id). Without `replace`, an existing marker is kept and
        its id returned. `hwm_floor`: the ledger id the books were restored up to."""
        k = self.keys
        if not replace:
            current = await self._io(cast(Awaitable[str | None], self._client.hget(k.epoch, "id")))
            if current:
                return current
        epoch = new_epoch_id()
        mapping: dict[Any, Any] = {
            "id": epoch,
            "created_ms": str(time.time_ns() // 1_000_000),
            "origin": origin,
            "hwm_floor": hwm_floor,
        }
        if replace:
            await self._io(self._client.hset(k.epoch, mapping=mapping))
            return epoch
        created = await self._io(self._client.hsetnx(k.epoch, "id", epoch))
        if not created:
            current = await self._io(cast(Awaitable[str | None], self._client.hget(k.epoch, "id")))
            return current or epoch
        del mapping["id"]
        await self._io(self._client.hset(k.epoch, mapping=mapping))
        return epoch

    # -- restore -------------------------------------------------------------------------------

    #: Key families of an org that a restore rebuilds from the ledger (everything else, e.g.
    #: cost tickets, denial counters and idempotency records, is left as it is).
    _RESTORED = ("ledger", "wallets", "usage", "epoch", "w:", "r:", "burn:", "pw:")

    async def _restored_keys(self) -> list[str]:
        prefix = self.keys.prefix
        found: list[str] = []
        async for key in self._client.scan_iter(match=prefix + "*", count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            rest = name[len(prefix) :]
            if any(rest == f or (f.endswith(":") and rest.startswith(f)) for f in self._RESTORED):
                found.append(name)
        return found

    async def restore_books(self, plan: RestorePlan) -> str:
        """Replace the org's wallets, open reservations, deadline index, usage counters, daily
        burn, period states and ledger stream by `plan` and write a new epoch marker (origin
        `restore`, `hwm_floor` the archived high-water mark), all in one MULTI/EXEC: every key
        shares the org's hash tag, so a concurrent settle sees the old books or the new ones,
        never a mix. Returns the new epoch id."""
        k = self.keys
        old = await self._io(self._restored_keys())
        now_ms = time.time_ns() // 1_000_000
        epoch = new_epoch_id()
        async with translated_pipeline(self._client, self._endpoint, transaction=True) as pipe:
            for i in range(0, len(old), 500):
                pipe.delete(*old[i : i + 500])
            for wid, rec in plan.wallets.items():
                mapping: dict[Any, Any] = {f: str(v) for f, v in rec.items()}
                mapping["created_ms"] = str(plan.created_ms.get(wid, now_ms))
                if wid in plan.user_teams:
                    mapping["team"] = plan.user_teams[wid]
                pipe.hset(k.wallet(wid), mapping=mapping)
            if plan.wallets:
                pipe.sadd(k.wallets, *plan.wallets)
            for rid, fields in plan.reservations.items():
                pipe.hset(k.reservation(rid), mapping=cast(dict[Any, Any], fields))
            if plan.deadlines:
                pipe.zadd(k.deadlines, dict(plan.deadlines))
            if plan.usage:
                pipe.hset(k.usage, mapping={f: str(v) for f, v in plan.usage.items()})
            for day, per in plan.burn.items():
                if per:
                    pipe.hset(k.burn(day), mapping={w: str(v) for w, v in per.items()})
                    pipe.pexpire(k.burn(day), BURN_TTL_MS)
            for wid, state in plan.period_state.items():
                pipe.hset(k.period_state(wid), mapping=cast(dict[Any, Any], state))
            for entry_id, fields in plan.tail:
                pipe.xadd(k.ledger, cast(dict[Any, Any], fields), id=entry_id)
            pipe.hset(
                k.epoch,
                mapping={
                    "id": epoch,
                    "created_ms": str(now_ms),
                    "origin": "restore",
                    "hwm_floor": plan.high_water,
                },
            )
            await self._io(pipe.execute())
        return epoch

    # -- reads ---------------------------------------------------------------------------------

    async def wallet(self, wallet_id: str) -> dict[str, int] | None:
        raw = await self._io(
            cast(Awaitable[dict[str, str]], self._client.hgetall(self.keys.wallet(wallet_id)))
        )
        return _wallet_record(raw) if raw else None

    async def wallet_ids(self) -> set[str]:
        members = await self._io(
            cast(Awaitable[set[str]], self._client.smembers(self.keys.wallets))
        )
        return set(members)

    async def wallets(self) -> dict[str, dict[str, int]]:
        """Every wallet: the id set, then all hashes in one pipeline."""
        ids = sorted(await self.wallet_ids())
        if not ids:
            return {}
        async with translated_pipeline(self._client, self._endpoint, transaction=False) as pipe:
            for wid in ids:
                pipe.hgetall(self.keys.wallet(wid))
            raws = await self._io(pipe.execute())
        return {wid: _wallet_record(raw) for wid, raw in zip(ids, raws, strict=True) if raw}

    async def wallet_team(self, wallet_id: str) -> str:
        raw = await self._io(
            cast(Awaitable[str | None], self._client.hget(self.keys.wallet(wallet_id), "team"))
        )
        return str(raw or "")

    async def wallet_teams(self) -> dict[str, str]:
        """User wallet id -> the team it belongs to ('' when it has none), one pipeline."""
        ids = sorted(w for w in await self.wallet_ids() if w.startswith("user:"))
        if not ids:
            return {}
        async with translated_pipeline(self._client, self._endpoint, transaction=False) as pipe:
            for wid in ids:
                pipe.hget(self.keys.wallet(wid), "team")
            raws = await self._io(pipe.execute())
        return {wid: str(raw or "") for wid, raw in zip(ids, raws, strict=True)}

    async def reservation(self, reservation_id: str) -> Reservation | None:
        raw = await self._io(
            cast(
                Awaitable[dict[str, str]],
                self._client.hgetall(self.keys.reservation(reservation_id)),
            )
        )
        if not raw:
            return None
        cost = raw.get("cost", "")
        return Reservation(
            id=reservation_id,
            wallet=raw.get("wallet", ""),
            amount=store_int(raw.get("amount")),
            state=raw.get("state", "open"),  # type: ignore[arg-type]
            team=raw.get("team", ""),
            group=raw.get("group", ""),
            user=raw.get("user", ""),
            model=raw.get("model", ""),
            deadline_ms=store_int(raw.get("deadline_ms")),
            cost=store_int(cost) if cost else None,
            overdraft=raw.get("overdraft") == "1",
            estimated=raw.get("estimated") == "1",
        )

    async def ledger_length(self) -> int:
        length: int = await self._io(self._client.xlen(self.keys.ledger))
        return length

    async def ledger(
        self,
        count: int,
        *,
        before: str | None = None,
        wallet: str | None = None,
        scan_limit: int = 100_000,
    ) -> list[LedgerEntry]:
        """Newest first: up to `count` entries older than `before` (an entry id), optionally only
        those touching `wallet` (as `wallet`, `from` or `to`), scanning at most `scan_limit`."""
        out: list[LedgerEntry] = []
        upper = f"({before}" if before else "+"
        scanned = 0
        page = count if wallet is None else max(count, 500)
        while len(out) < count and scanned < scan_limit:
            rows = await self._io(
                cast(
                    Awaitable[list[tuple[str, dict[str, str]]]],
                    self._client.xrevrange(self.keys.ledger, max=upper, min="-", count=page),
                )
            )
            if not rows:
                break
            scanned += len(rows)
            for entry_id, fields in rows:
                entry = _entry(entry_id, fields)
                if wallet is None or _touches(entry, wallet):
                    out.append(entry)
                    if len(out) == count:
                        break
            upper = f"({rows[-1][0]}"
        return out

    async def iter_ledger(
        self, upto: str | None = None, batch: int = 5000
    ) -> AsyncIterator[LedgerEntry]:
        """Oldest first, from the start of the stream up to and including `upto` (default: end)."""
        lower = "-"
        upper = upto or "+"
        while True:
            rows = await self._io(
                cast(
                    Awaitable[list[tuple[str, dict[str, str]]]],
                    self._client.xrange(self.keys.ledger, min=lower, max=upper, count=batch),
                )
            )
            for entry_id, fields in rows:
                yield _entry(entry_id, fields)
            if len(rows) < batch:
                return
            lower = f"({rows[-1][0]}"

    async def audit_snapshot(self, attempts: int = 50) -> AuditSnapshot:
        """Wallets, last ledger id and deadline index as of one instant (WATCH on the ledger and
        the wallet set: every money operation appends to the ledger)."""
        k = self.keys
        for _ in range(attempts):
            try:
                async with translated_pipeline(
                    self._client, self._endpoint, transaction=True
                ) as pipe:
                    await self._io(pipe.watch(k.ledger, k.wallets))
                    ids = sorted(
                        await self._io(cast(Awaitable[set[str]], pipe.smembers(k.wallets)))
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for wid in ids:
                        pipe.hgetall(k.wallet(wid))
                    pipe.xrevrange(k.ledger, max="+", min="-", count=1)
                    pipe.zrange(k.deadlines, 0, -1, withscores=True)
                    res = await self._io(pipe.execute())
            except WatchError:
                continue
            wallets = {
                wid: _wallet_record(raw) for wid, raw in zip(ids, res[: len(ids)], strict=True)
            }
            last = res[len(ids)]
            deadlines = {str(m): int(s) for m, s in res[len(ids) + 1]}
            return AuditSnapshot(wallets, str(last[0][0]) if last else None, deadlines)
        raise StoreUnavailable(
            "the ledger is too busy to take a consistent snapshot; retry the audit",
            {"endpoint": self._endpoint},
        )

    async def burn_by_day(self, days: Sequence[str]) -> dict[str, dict[str, int]]:
        pipe = self._client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.keys.burn(day))
        buckets = await self._io(pipe.execute())
        return {
            day: {str(w): store_int(v) for w, v in bucket.items()}
            for day, bucket in zip(days, buckets, strict=True)
        }

    async def denial_counters(self, month: str | None = None) -> dict[str, int]:
        raw = await self._io(
            cast(Awaitable[dict[str, str]], self._client.hgetall(self.keys.stats(month)))
        )
        return {f: store_int(v) for f, v in raw.items()}


__all__ = ["SCRIPT_NAMES", "RedisWalletStore", "load_script_text"]
