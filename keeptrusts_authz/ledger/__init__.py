"""PostgreSQL as the ledger's system of record: schema migrations, the archive store and the
archiver that moves the Redis ledger stream into it."""

from keeptrusts_authz.ledger.archive_store import ArchiveStore, Snapshot

__all__ = ["ArchiveStore", "Snapshot"]
