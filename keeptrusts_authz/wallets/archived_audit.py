"""The audit when PostgreSQL holds the ledger of record: the newest checkpoint (or genesis with
`full`), then the archived entries after it, then the Redis entries not yet archived, compared
with the Redis wallets. The replay rule itself is `wallets.audit.LedgerReplay` (one owner).

It also catches what a Redis-only audit cannot: a Redis whose ledger ends before the archived
high-water mark (lost or rolled back) and a Redis without wallets while the archive has history.
"""

from __future__ import annotations

from keeptrusts_authz.wallets.audit import LedgerReplay, compare
from keeptrusts_authz.wallets.models import AuditReport
from keeptrusts_authz.wallets.ports import LedgerArchive, WalletStore


def stream_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or "0")


async def audit_with_archive(
    store: WalletStore,
    archive: LedgerArchive,
    org: str,
    *,
    full: bool = False,
    save_checkpoint: bool = True,
) -> AuditReport:
    snap = await store.audit_snapshot()
    high = await archive.last_archived_id(org)
    gaps: list[str] = []
    if high is not None:
        if snap.last_entry_id is None or stream_key(snap.last_entry_id) < stream_key(high):
            ends = snap.last_entry_id or "nothing (empty)"
            gaps.append(
                f"ledger gap: Redis's ledger ends at {ends} but PostgreSQL has archived up to "
                f"{high}: Redis lost or rolled back entries (run `keeptrusts-authz restore`)"
            )
        elif (await store.marker(probe=high)).probe_missing:
            gaps.append(
                f"ledger gap: PostgreSQL has archived up to {high} but that entry is gone from "
                f"Redis, whose ledger now continues to {snap.last_entry_id} from older entries: "
                "Redis was rolled back and served on stale books (run `keeptrusts-authz restore`)"
            )
        if not snap.wallets:
            gaps.append(
                f"wallets missing: Redis holds no wallet but PostgreSQL has ledger history up to "
                f"{high} (run `keeptrusts-authz restore`)"
            )
    cp = None if full else await archive.last_snapshot(org)
    replay = LedgerReplay() if cp is None else LedgerReplay.resume(cp)
    if high is not None:
        async for entry in archive.iter_entries(org, after=cp.upto if cp else None, upto=high):
            replay.apply(entry)
        if save_checkpoint and not replay.errors and (cp is None or cp.upto != high):
            await archive.save_snapshot(replay.checkpoint(org, high))
    if snap.last_entry_id is not None:
        floor = stream_key(high) if high else (-1, -1)
        async for entry in store.iter_ledger(upto=snap.last_entry_id):
            if stream_key(entry.id) > floor:
                replay.apply(entry)
    mismatches = gaps + compare(replay, snap.wallets, snap.deadlines)
    return AuditReport(
        ok=not mismatches,
        entries=replay.entries,
        mismatches=mismatches,
        wallets=len(snap.wallets),
        open_reservations=len(snap.deadlines),
    )


__all__ = ["audit_with_archive", "stream_key"]
