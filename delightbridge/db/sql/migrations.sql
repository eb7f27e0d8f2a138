-- Schema migration bookkeeping (db/migrate.py), in the service's own schema.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- Only when missing: a service role whose schema its owner created beforehand (see
-- deploy/service-role.sql) needs no CREATE right on the database.
-- name: migrations_create_schema
DO $$
BEGIN
    IF to_regnamespace('delightbridge_sync') IS NULL THEN
        CREATE SCHEMA delightbridge_sync;
    END IF;
END
$$

-- name: migrations_create_table
CREATE TABLE IF NOT EXISTS delightbridge_sync.schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)

-- name: migrations_lock
SELECT pg_advisory_lock($1::bigint)

-- name: migrations_unlock
SELECT pg_advisory_unlock($1::bigint)

-- name: migrations_applied
SELECT version, name, checksum FROM delightbridge_sync.schema_migrations ORDER BY version

-- name: migrations_table_exists
SELECT to_regclass('delightbridge_sync.schema_migrations') IS NOT NULL

-- name: migrations_record
INSERT INTO delightbridge_sync.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
