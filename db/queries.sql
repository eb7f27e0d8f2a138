-- Every SQL statement the service runs, by name. Values are always parameters ($1…);
-- nothing here is ever formatted with data. Loaded by db/queries.py; a test prepares
-- each one against a migrated database.

-- ---------------------------------------------------------------- migrations

-- name: migrations_create_table
CREATE TABLE IF NOT EXISTS sync_schema_migrations (
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
SELECT version, name, checksum FROM sync_schema_migrations ORDER BY version

-- name: migrations_table_exists
SELECT to_regclass('sync_schema_migrations') IS NOT NULL

-- name: migrations_record
INSERT INTO sync_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)

-- ---------------------------------------------------------------- services

-- name: services_status
SELECT a.id, a.name, a.email, a.sync_state, a.last_history_id, a.last_synced_at,
       a.watch_expires_at, a.disconnected_reason, a.last_sync_error,
       (SELECT count(*) FROM email_threads t WHERE t.account_id = a.id) AS threads,
       (SELECT count(*) FROM emails e JOIN email_threads t ON t.id = e.thread_id
         WHERE t.account_id = a.id) AS messages
FROM gmail_accounts a
ORDER BY a.created_at, a.id
