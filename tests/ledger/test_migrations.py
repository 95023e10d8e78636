"""Shipped migrations against a real PostgreSQL: applied in order once, recorded, re-run is a no-op;
`db migrate` through the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from keeptrusts_authz.cli.main import main
from keeptrusts_authz.ledger.schema import migrate, shipped


def test_migrations_apply_in_order_once(postgres_url: str) -> None:
    names = [m.name for m in shipped()]
    assert names == sorted(names) and names[0].startswith("001_")
    assert asyncio.run(migrate(postgres_url)) == names
    assert asyncio.run(migrate(postgres_url)) == []
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    assert [r[1] for r in rows] == names


def test_concurrent_migrations_apply_each_once(postgres_url: str) -> None:
    async def both() -> list[list[str]]:
        return list(await asyncio.gather(migrate(postgres_url), migrate(postgres_url)))

    a, b = asyncio.run(both())
    assert sorted(a + b) == sorted(m.name for m in shipped())


def test_ledger_entries_are_append_only(postgres_url: str) -> None:
    asyncio.run(migrate(postgres_url))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ledger_entries VALUES ('o', 1, 0, 1, 'credit', 'org', 5, '{}'::jsonb)"
        )
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE ledger_entries SET amount = 6")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM ledger_entries")


def _config(tmp_path: Path, extra: str = "") -> str:
    p = tmp_path / "kt.yaml"
    p.write_text("organization: {id: acme, currency: USD}\n" + extra)
    return str(p)


def test_db_migrate_cli(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, f"ledger: {{postgres_url: '{postgres_url}'}}\n")
    assert main(["db", "migrate", "--config", cfg]) == 0
    assert "applied 001_ledger_entries.sql" in capsys.readouterr().out
    assert main(["db", "migrate", "--config", cfg]) == 0
    assert "schema up to date" in capsys.readouterr().out


def test_db_migrate_from_env(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPTRUSTS_POSTGRES_URL", postgres_url)
    assert main(["db", "migrate", "--config", _config(tmp_path)]) == 0
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(shipped()),
        )


def test_db_migrate_without_url_or_bad_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEEPTRUSTS_POSTGRES_URL", raising=False)
    assert main(["db", "migrate", "--config", _config(tmp_path)]) == 2
    assert "ledger.postgres_url is not set" in capsys.readouterr().err
    monkeypatch.setenv("KEEPTRUSTS_POSTGRES_URL", "mysql://x")
    assert main(["db", "migrate", "--config", _config(tmp_path)]) == 2
    assert "postgresql://" in capsys.readouterr().err


def test_unknown_ledger_key_is_rejected_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, "ledger: {postgres_ur: 'postgresql://x'}\n")
    assert main(["db", "migrate", "--config", cfg]) == 2
    assert "ledger.postgres_ur" in capsys.readouterr().err


def test_db_migrate_unreachable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from testing.redis_server import free_port

    url = f"postgresql://u:secretpw@127.0.0.1:{free_port()}/x?connect_timeout=2"
    cfg = _config(tmp_path, f"ledger: {{postgres_url: '{url}'}}\n")
    assert main(["db", "migrate", "--config", cfg]) == 3
    err = capsys.readouterr().err
    assert "PostgreSQL unreachable" in err and "secretpw" not in err
