"""Ordered SQL migrations, applied once each under a PostgreSQL advisory lock.

Files are ``delightbridge/db/migrations/NNNN_name.sql``, applied in order, each in its own
transaction and recorded with its checksum in ``delightbridge_sync.schema_migrations``
(the service's own schema, created here; see ``0002_sync_schema.sql``). Several
processes starting at once serialise on the lock; the second finds nothing to do.
A migration edited after it was applied is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources import files

import asyncpg

from delightbridge.core.errors import MigrationError, QueryFailed
from delightbridge.db.queries import query
from delightbridge.db.types import Connection

log = logging.getLogger(__name__)

# pg_advisory_lock key of the migration lock ("dbsync" + "migr" in ASCII hex).
MIGRATION_LOCK_KEY = 0x646273796E636D69
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with this code, in the order they apply."""
    found = []
    for entry in files("delightbridge.db").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(match[1], match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


async def pending(conn: Connection) -> list[str]:
    """Versions not yet applied (for readiness checks); takes no lock."""
    if not await conn.fetchval(query("migrations_table_exists")):
        return [m.version for m in available()]
    applied = {r["version"] for r in await conn.fetch(query("migrations_applied"))}
    return [m.version for m in available() if m.version not in applied]


async def migrate(conn: Connection) -> list[str]:
    """Bring the schema up to date; return the versions applied by this call."""
    await conn.execute(query("migrations_lock"), MIGRATION_LOCK_KEY)
    try:
        await conn.execute(query("migrations_create_schema"))
        await conn.execute(query("migrations_create_table"))
        applied = {r["version"]: r for r in await conn.fetch(query("migrations_applied"))}
        known = available()
        _check_history(applied, known)
        done = []
        for migration in known:
            if migration.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    query("migrations_record"),
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info(
                "applied migration %s_%s",
                migration.version,
                migration.name,
                extra={"action": "db.migrate", "version": migration.version},
            )
            done.append(migration.version)
        return done
    except (asyncpg.PostgresError, QueryFailed) as exc:
        raise MigrationError(f"migration failed: {exc}") from exc
    finally:
        await conn.execute(query("migrations_unlock"), MIGRATION_LOCK_KEY)


def _check_history(applied: dict[str, asyncpg.Record], known: list[Migration]) -> None:
    by_version = {m.version: m for m in known}
    for version, row in applied.items():
        migration = by_version.get(version)
        if migration is None:
            log.warning(
                "database has migration %s_%s that this code does not know; "
                "is an older version running against a newer schema?",
                version,
                row["name"],
                extra={"action": "db.migrate.unknown", "version": version},
            )
        elif migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {version}_{migration.name} was edited after it was applied; "
                "add a new migration instead"
            )
