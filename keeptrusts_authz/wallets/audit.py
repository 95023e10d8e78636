"""Ledger replay: rebuild every wallet and the set of open reservations from the ledger stream
(docs/ARCHITECTURE.md, "Wallet semantics") and compare them with what the store holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from keeptrusts_authz.wallets.models import (
    RECOVERED_FIELD,
    WALLET_FIELDS,
    LedgerCheckpoint,
    LedgerEntry,
)


@dataclass
class _Acc:
    balance: int = 0
    reserved: int = 0
    allocated_total: int = 0
    spent_total: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in WALLET_FIELDS}


@dataclass
class LedgerReplay:
    """Apply ledger entries oldest first; `errors` collects entries that do not add up."""

    wallets: dict[str, _Acc] = field(default_factory=dict)
    open_reservations: dict[str, tuple[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    entries: int = 0

    @classmethod
    def resume(cls, cp: LedgerCheckpoint) -> LedgerReplay:
        """A replay that continues from a checkpoint instead of genesis."""
        replay = cls(entries=cp.entries, open_reservations=dict(cp.open_reservations))
        for wid, vals in cp.wallets.items():
            replay.wallets[wid] = _Acc(**{f: int(vals.get(f, 0)) for f in WALLET_FIELDS})
        return replay

    def checkpoint(self, org: str, upto: str) -> LedgerCheckpoint:
        return LedgerCheckpoint(
            org=org,
            upto=upto,
            entries=self.entries,
            wallets={wid: acc.as_dict() for wid, acc in self.wallets.items()},
            open_reservations=dict(self.open_reservations),
        )

    def _w(self, wallet_id: str) -> _Acc:
        acc = self.wallets.get(wallet_id)
        if acc is None:
            acc = self.wallets[wallet_id] = _Acc()
        return acc

    def apply(self, e: LedgerEntry) -> None:
        self.entries += 1
        f = e.fields
        try:
            self._apply(e, f)
        except (KeyError, ValueError) as exc:
            self.errors.append(f"ledger entry {e.id} ({e.op}): malformed ({exc})")
            return
        after = f.get("balance_after")
        if after is not None and e.wallet in self.wallets:
            got = self.wallets[e.wallet].balance
            if int(after) != got:
                self.errors.append(
                    f"{e.wallet}: balance_after of ledger entry {e.id} ({e.op}) is {after} "
                    f"but the replay gives {got}"
                )

    def _apply(self, e: LedgerEntry, f: Mapping[str, str]) -> None:
        a = e.amount
        if e.op == "credit":
            org = self._w(e.wallet)
            org.balance += a
            org.allocated_total += a
        elif e.op == "allocate":
            src, dst = self._w(f.get("from", "org")), self._w(f["to"])
            src.balance -= a
            dst.balance += a
            dst.allocated_total += a
        elif e.op == "reclaim":
            src, dst = self._w(f["from"]), self._w(f.get("to", "org"))
            src.balance -= a
            src.allocated_total -= a
            dst.balance += a
        elif e.op == "transfer":
            src, dst = self._w(f["from"]), self._w(f["to"])
            src.balance -= a
            src.allocated_total -= a
            dst.balance += a
            dst.allocated_total += a
        elif e.op == "period_rollover":
            # `amount` is the period's allocation; `delta` what moved from the pool (negative
            # when more unspent balance returned than the new period allocates).
            delta = int(f["delta"])
            if delta != a - int(f["returned"]) + int(f["forgiven"]):
                self.errors.append(
                    f"ledger entry {e.id} (period_rollover): delta {delta} is not "
                    "amount - returned + forgiven"
                )
            src, dst = self._w(f.get("from", "org")), self._w(f["to"])
            src.balance -= delta
            dst.balance += delta
            dst.allocated_total += delta
        elif e.op == "reserve":
            rid = f["reservation"]
            w = self._w(e.wallet)
            w.balance -= a
            w.reserved += a
            if rid in self.open_reservations:
                self.errors.append(f"ledger entry {e.id}: reservation {rid} reserved twice")
            self.open_reservations[rid] = (e.wallet, a)
        elif e.op in ("settle", "release", "expire"):
            rid = f["reservation"]
            reserved = int(f["reserved"])
            cost = int(f.get("cost") or "0")
            opened = self.open_reservations.pop(rid, None)
            if f.get(RECOVERED_FIELD) == "1" and e.op == "settle":
                # Booked from the settlement journal: its reserve died with a lost store.
                if opened is not None or reserved != 0:
                    self.errors.append(
                        f"ledger entry {e.id} (settle, recovered): reservation {rid} is open in "
                        "the ledger or the entry holds a reservation"
                    )
            elif opened is None:
                self.errors.append(
                    f"ledger entry {e.id} ({e.op}): reservation {rid} is not open in the ledger"
                )
            elif opened != (e.wallet, reserved):
                self.errors.append(
                    f"ledger entry {e.id} ({e.op}): reservation {rid} was opened on "
                    f"{opened[0]} for {opened[1]}, closed on {e.wallet} for {reserved}"
                )
            w = self._w(e.wallet)
            w.reserved -= reserved
            w.balance += reserved - cost
            w.spent_total += cost
        elif e.op == "correct":
            # Late real usage replacing an estimate of a reservation closed before.
            rid = f["reservation"]
            if rid in self.open_reservations:
                self.errors.append(
                    f"ledger entry {e.id} (correct): reservation {rid} is still open"
                )
            delta = int(f["cost"]) - int(f["previous_cost"])
            if delta != int(f["delta"]):
                self.errors.append(f"ledger entry {e.id} (correct): delta is not cost - previous")
            w = self._w(e.wallet)
            w.balance -= delta
            w.spent_total += delta
        else:
            raise ValueError(f"unknown op {e.op!r}")


def compare(
    replay: LedgerReplay,
    stored: Mapping[str, Mapping[str, int]],
    deadlines: Mapping[str, int],
) -> list[str]:
    """Every difference between the replay and the store, one line each naming wallet and field."""
    out = list(replay.errors)
    for wid in sorted(set(replay.wallets) | set(stored)):
        expected = replay.wallets.get(wid)
        actual = stored.get(wid)
        if actual is None:
            out.append(f"{wid}: in the ledger but missing from the store")
            continue
        exp = expected.as_dict() if expected is not None else dict.fromkeys(WALLET_FIELDS, 0)
        if expected is None and any(actual.get(f, 0) for f in WALLET_FIELDS):
            out.append(f"{wid}: in the store but never in the ledger")
        for f in WALLET_FIELDS:
            if actual.get(f, 0) != exp[f]:
                out.append(
                    f"{wid}: {f} is {actual.get(f, 0)} in the store but {exp[f]} by ledger "
                    f"replay (micros)"
                )
    open_ids = set(replay.open_reservations)
    indexed = set(deadlines)
    for rid in sorted(open_ids - indexed):
        out.append(f"reservation {rid}: open in the ledger but missing from the deadline index")
    for rid in sorted(indexed - open_ids):
        out.append(f"reservation {rid}: in the deadline index but not open in the ledger")
    return out


__all__ = ["LedgerReplay", "compare"]
