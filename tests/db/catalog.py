"""The web app's schema ``public`` as data, to compare two databases' layouts.

Everything a schema-diffing deploy tool could see or trip over: tables and their columns
(type, nullability, default, generation), indexes, constraints, enum labels, functions,
sequences, views and user triggers. Two databases whose catalogs are equal look alike to
the web app's ``drizzle-kit push``; the contract tests (tests/contract) check that with
the tool itself.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.dbutil import REFERENCE_SCHEMA

SERVICE_SCHEMA = "delightbridge_sync"

WEB_APP_TABLES = (
    "users", "workspace_members", "gmail_accounts", "service_sender_identities", "categories",
    "email_threads", "emails", "drafts", "send_outbox",
)


async def public_catalog(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Schema public, object by object, in a stable order."""
    queries = {
        "tables": """SELECT relname, relkind::text FROM pg_class
                     WHERE relnamespace = 'public'::regnamespace
                       AND relkind IN ('r', 'p', 'v', 'm', 'f')
                     ORDER BY 1""",
        "columns": """SELECT table_name, column_name, data_type, udt_schema, udt_name,
                             is_nullable, column_default, is_generated, generation_expression
                      FROM information_schema.columns WHERE table_schema = 'public'
                      ORDER BY table_name, column_name""",
        "indexes": """SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
                      ORDER BY 1""",
        "constraints": """SELECT conrelid::regclass::text AS tbl, conname,
                                 pg_get_constraintdef(oid) AS def
                          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                          ORDER BY 1, 2""",
        "enums": """SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
                    FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
                    WHERE t.typnamespace = 'public'::regnamespace
                    GROUP BY t.typname ORDER BY 1""",
        "functions": """SELECT proname, pg_get_function_identity_arguments(oid) AS args
                        FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
        "sequences": """SELECT relname FROM pg_class
                        WHERE relnamespace = 'public'::regnamespace AND relkind = 'S'
                        ORDER BY 1""",
        "triggers": """SELECT tgrelid::regclass::text AS tbl, tgname,
                              tgfoid::regprocedure::text AS function
                       FROM pg_trigger
                       WHERE NOT tgisinternal
                         AND tgrelid IN (SELECT oid FROM pg_class
                                         WHERE relnamespace = 'public'::regnamespace)
                       ORDER BY 1, 2""",
    }
    return {name: [dict(r) for r in await conn.fetch(sql)] for name, sql in queries.items()}


def without_service_trigger(catalog: dict[str, list[dict[str, Any]]]
                            ) -> dict[str, list[dict[str, Any]]]:
    """The catalog minus the one trigger the service keeps on a web-app table.

    Its function lives in the service's schema (migration 0002); the web app's tool does
    not manage triggers, and the contract tests prove its push ignores it.
    """
    triggers = [t for t in catalog["triggers"]
                if not t["function"].startswith(f"{SERVICE_SCHEMA}.")]
    return {**catalog, "triggers": triggers}


async def load_reference(conn: asyncpg.Connection, *, tables: bool = True,
                         rows: bool = True) -> None:
    """The reference file: the web app's tables as its tool creates them, its sample rows,
    or both."""
    tables_sql, rows_sql = REFERENCE_SCHEMA.read_text(encoding="utf-8").split(
        "-- A small population", 1)
    await conn.execute((tables_sql if tables else "") + ("--" + rows_sql if rows else ""))


async def table_rows(conn: asyncpg.Connection, table: str) -> list[dict[str, Any]]:
    """Every row of a public table, every column, in primary-key order."""
    return [dict(r) for r in await conn.fetch(f'SELECT * FROM public."{table}" ORDER BY 1')]
