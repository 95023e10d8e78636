"""Schema migrations shipped with the package: `migrations/NNN_name.sql`, applied in number order,
each once, in its own transaction, recorded in `schema_migrations`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# Serialises concurrent `db migrate` runs (two replicas starting at once).
_MIGRATE_LOCK = 0x6B74_6D69  # "ktmi"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def shipped() -> list[Migration]:
    """Every migration in the package, in version order (a duplicate number is a packaging bug)."""
    out: dict[int, Migration] = {}
    for item in resources.files("keeptrusts_authz.ledger.migrations").iterdir():
        m = _NAME.match(item.name)
        if m is None:
            continue
        version = int(m.group(1))
        if version in out:
            raise RuntimeError(f"two migrations numbered {version:03d}")
        out[version] = Migration(version, item.name, item.read_text(encoding="utf-8"))
    return [out[v] for v in sorted(out)]


async def migrate(url: str) -> list[str]:
    """Apply every shipped migration not yet recorded; returns the names applied now."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for mig in shipped():
                if mig.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (mig.version, mig.name),
                    )
                applied.append(mig.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
    return applied


__all__ = ["Migration", "migrate", "shipped"]
