"""This service's first database layout ("v0"), for upgrade tests.

Until migration 0003 of the current set, the service kept its state in schema public: its
migrations ``tests/fixtures/layout_v0/000[1-5]_*.sql`` added columns to the web app's
tables and tables of its own, recorded in ``public.sync_schema_migrations``. This module
lays a database out that way, as that release's migration runner did, and fills every
column the upgrade moves with a value that is not its default.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

LAYOUT_V0 = Path(__file__).parent.parent / "fixtures" / "layout_v0"

RUN_ID = uuid.UUID("6f1c9a52-5b8e-4c35-9d61-0c7d2f7e1a01")
OTHER_RUN_ID = uuid.UUID("6f1c9a52-5b8e-4c35-9d61-0c7d2f7e1a02")
T0 = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)

#: What the v0 layout added to gmail_accounts, with a value for the connected service.
SERVICE_STATE: dict[str, Any] = {
    "access_token_expires_at": T0,
    "disconnected_reason": "was disconnected once",
    "disconnected_at": datetime(2026, 11, 1, tzinfo=UTC),
    "last_synced_at": datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    "last_full_sync_at": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    "last_sync_error": "gmail_unavailable: 503",
    "last_sync_error_at": datetime(2026, 11, 2, 7, 0, tzinfo=UTC),
    "watch_expires_at": datetime(2026, 11, 9, tzinfo=UTC),
    "watch_history_id": "4100",
    "watch_renewed_at": datetime(2026, 11, 2, tzinfo=UTC),
    "watch_error": "watch: 403",
    "watch_error_at": datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
}

#: What the v0 layout added to emails, with a value for a message the service wrote.
MESSAGE_METADATA: dict[str, Any] = {
    "subject": "Refund please",
    "cc_email": "cc@customer.example",
    "bcc_email": "bcc@customer.example",
    "reply_to": "reply@customer.example",
    "body_text": "Hi",
    "snippet": "Hi",
    "label_ids": ["INBOX", "UNREAD"],
    "attachments": '[{"filename": "a.pdf", "size": 3}]',
    "history_id": 4199,
    "size_estimate": 2048,
    "content_hash": "sha256:abc",
    "parse_problems": ["charset"],
    "synced_run_id": RUN_ID,
}

RUN: dict[str, Any] = {
    "id": RUN_ID, "account_id": "svc-noji", "mode": "full", "trigger": "connect",
    "status": "succeeded", "fell_back_to_full": True, "start_history_id": 4000,
    "end_history_id": 4200, "threads_processed": 1, "messages_processed": 1,
    "messages_deleted": 0, "progress": '{"phase": "done"}', "error_code": "none",
    "error": "no error", "started_at": T0, "finished_at": datetime(2026, 11, 2, 9, tzinfo=UTC),
}

WATCH_STOP: dict[str, Any] = {
    "id": 7, "account_id": "svc-gone", "email": "gone@noji.example", "refresh_token": "rt-gone",
    "access_token": "at-gone", "access_token_expires_at": T0,
    "watch_expires_at": datetime(2026, 11, 8, tzinfo=UTC), "reason": "deleted",
    "queued_at": T0, "attempts": 2, "last_error": "revoke: 500",
}


async def install_layout_v0(conn: asyncpg.Connection) -> None:
    """Apply the v0 migrations and record them, as that release's runner did."""
    await conn.execute(
        """CREATE TABLE sync_schema_migrations (
               version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    for path in sorted(LAYOUT_V0.glob("*.sql")):
        sql = path.read_text(encoding="utf-8")
        version, name = path.stem.split("_", 1)
        async with conn.transaction():
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO sync_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                version, name, hashlib.sha256(sql.encode()).hexdigest(),
            )


async def fill_layout_v0(conn: asyncpg.Connection) -> None:
    """Put a value in every v0 column and table the upgrade moves.

    Expects the reference file's sample rows (service ``svc-noji``, its thread and email).
    """
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(SERVICE_STATE, start=2))
    await conn.execute(f"UPDATE gmail_accounts SET {sets} WHERE id = $1",
                       "svc-noji", *SERVICE_STATE.values())
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(MESSAGE_METADATA, start=2))
    await conn.execute(f"UPDATE emails SET {sets} WHERE id = $1",
                       "email-svc-noji-18c1", *MESSAGE_METADATA.values())
    await _insert(conn, "sync_runs", RUN)
    await _insert(conn, "sync_runs", {**RUN, "id": OTHER_RUN_ID, "status": "running",
                                      "finished_at": None})
    await _insert(conn, "sync_watch_stops", WATCH_STOP)


async def _insert(conn: asyncpg.Connection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})", *row.values())
