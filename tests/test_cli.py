"""The console script, run as a real subprocess like an operator would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg

from delightbridge.core.settings import variable_names
from delightbridge.db.migrate import available


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in variable_names() and k != "DELIGHTBRIDGE_ENV_FILE"}
    return subprocess.run(
        [sys.executable, "-m", "delightbridge.cli.main", *args],
        env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )


def test_db_url_prints_the_configured_url(tmp_path: Path) -> None:
    url = "postgresql://app@db.internal:5432/delightbridge"
    result = run_cli("db-url", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url


async def test_migrate_applies_then_reports_up_to_date(fresh_database: str, tmp_path: Path
                                                       ) -> None:
    first = run_cli("migrate", env={"DATABASE_URL": fresh_database}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied migrations: " + ", ".join(
        m.version for m in available()
    )
    second = run_cli("migrate", env={"DATABASE_URL": fresh_database}, cwd=tmp_path)
    assert second.returncode == 0
    assert second.stdout.strip() == "schema is up to date"
    conn = await asyncpg.connect(fresh_database)
    try:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM delightbridge_sync.schema_migrations")
        assert recorded == len(available())
    finally:
        await conn.close()


def test_invalid_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_cli("migrate", env={"GMAIL_BATCH_SIZE": "0"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "delightbridge: invalid configuration: GMAIL_BATCH_SIZE: must be from 1 to 100, got 0"
    ]


def test_unreachable_database_is_one_line_without_password(tmp_path: Path) -> None:
    url = "postgresql://app:hunter2secret@127.0.0.1:1/db"
    result = run_cli("migrate", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("delightbridge: cannot connect to PostgreSQL at ")
    assert "hunter2secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_status_runs_on_embedded_defaults_with_no_environment(tmp_path: Path) -> None:
    """Nothing configured: embedded PostgreSQL in ./.delightbridge, migrated."""
    result = run_cli("status", cwd=tmp_path, env={"LOG_FORMAT": "text"})
    assert result.returncode == 0, result.stderr
    assert "database ready" in result.stdout
    assert (tmp_path / ".delightbridge" / "pgdata" / "PG_VERSION").exists()
    assert "using embedded PostgreSQL" in result.stderr
    # Data survives: a second run finds the schema already there.
    again = run_cli("migrate", cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip() == "schema is up to date"


async def test_status_lists_existing_services(db_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO gmail_accounts (id, name, email, refresh_token) "
            "VALUES ('svc-noji', 'Noji', 'support@noji.example', 'rt')"
        )
    finally:
        await conn.close()
    result = run_cli("status", env={"DATABASE_URL": db_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "svc-noji" in result.stdout
    assert "connected" in result.stdout


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, what in ((("--port", str(port)), "the API (--port)"),
                           (("--port", "0", "--ops-port", str(port)),
                            "the operations port (--ops-port)")):
            result = run_cli("serve", *args, cwd=tmp_path)
            assert result.returncode == 1
            assert result.stderr.strip().splitlines() == [
                f"delightbridge: cannot listen on 127.0.0.1:{port} for {what}: the port is "
                "in use (another process listens there)"]
    assert not (tmp_path / ".delightbridge").exists()  # no database was started
