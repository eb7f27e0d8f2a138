-- What the sync service keeps beyond the web app's columns. Only additions: every
-- existing column keeps its name, type and meaning, and every new column is nullable
-- or has a default, so the web app's inserts keep working unchanged.

-- Services: OAuth token expiry, connection and sync health, Gmail push watch.
-- "Connected" keeps the web app's meaning: refresh_token IS NOT NULL. When Google
-- refuses the refresh token (invalid_grant) the sync clears it and records why.
ALTER TABLE gmail_accounts
    ADD COLUMN IF NOT EXISTS access_token_expires_at timestamptz,
    ADD COLUMN IF NOT EXISTS disconnected_reason     text,
    ADD COLUMN IF NOT EXISTS disconnected_at         timestamptz,
    ADD COLUMN IF NOT EXISTS last_synced_at          timestamptz,
    ADD COLUMN IF NOT EXISTS last_full_sync_at       timestamptz,
    ADD COLUMN IF NOT EXISTS last_sync_error         text,
    ADD COLUMN IF NOT EXISTS last_sync_error_at      timestamptz,
    ADD COLUMN IF NOT EXISTS watch_expires_at        timestamptz,
    ADD COLUMN IF NOT EXISTS watch_history_id        text,
    ADD COLUMN IF NOT EXISTS watch_renewed_at        timestamptz,
    ADD COLUMN IF NOT EXISTS watch_error             text,
    ADD COLUMN IF NOT EXISTS watch_error_at          timestamptz;

-- Derived, so it cannot drift from the columns it summarises.
ALTER TABLE gmail_accounts
    ADD COLUMN IF NOT EXISTS sync_state text GENERATED ALWAYS AS (
        CASE
            WHEN refresh_token IS NULL THEN 'disconnected'
            WHEN last_sync_error IS NOT NULL THEN 'error'
            ELSE 'connected'
        END
    ) STORED;

-- Addresses arrive in any case from Gmail notifications.
CREATE INDEX IF NOT EXISTS gmail_accounts_lower_email_idx ON gmail_accounts (lower(email));

ALTER TABLE email_threads
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

-- Messages: what Gmail says about each beyond the web app's columns.
ALTER TABLE emails
    ADD COLUMN IF NOT EXISTS subject         text,
    ADD COLUMN IF NOT EXISTS cc_email        text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS bcc_email       text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS reply_to        text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS body_text       text,
    ADD COLUMN IF NOT EXISTS snippet         text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS label_ids       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS attachments     jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS history_id      numeric(20, 0),
    ADD COLUMN IF NOT EXISTS size_estimate   integer,
    ADD COLUMN IF NOT EXISTS content_hash    text,
    ADD COLUMN IF NOT EXISTS parse_problems  text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS updated_at      timestamptz NOT NULL DEFAULT now();

-- One row per sync attempt: what ran, why, over which history range, and how it ended.
CREATE TABLE IF NOT EXISTS sync_runs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id         text NOT NULL REFERENCES gmail_accounts(id) ON DELETE CASCADE,
    mode               text NOT NULL CHECK (mode IN ('full', 'incremental')),
    trigger            text NOT NULL
                       CHECK (trigger IN ('api', 'notification', 'poll', 'connect', 'cli', 'repair')),
    status             text NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'succeeded', 'failed')),
    fell_back_to_full  boolean NOT NULL DEFAULT false,
    start_history_id   numeric(20, 0),
    end_history_id     numeric(20, 0),
    threads_processed  integer NOT NULL DEFAULT 0,
    messages_processed integer NOT NULL DEFAULT 0,
    messages_deleted   integer NOT NULL DEFAULT 0,
    progress           jsonb,
    error_code         text,
    error              text,
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
CREATE INDEX IF NOT EXISTS sync_runs_account_started_idx ON sync_runs (account_id, started_at DESC);
CREATE INDEX IF NOT EXISTS sync_runs_running_idx ON sync_runs (account_id) WHERE status = 'running';
