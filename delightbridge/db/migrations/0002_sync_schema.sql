-- Everything this service keeps lives in its own schema, delightbridge_sync (created with
-- the migration bookkeeping by db/migrate.py). Nothing of it is in public, which the web
-- app's deploy tool owns and prunes: the web app's tables receive rows only.
--
-- The service's tables reference the web app's rows by key, with ON DELETE CASCADE, so
-- whatever the web app deletes takes this service's state of it along. Such a foreign key
-- belongs to the referencing table, here, and the web app's tool does not see it.

-- Per service (gmail_accounts row): what the web app's columns do not say. "Connected"
-- keeps the web app's meaning, gmail_accounts.refresh_token IS NOT NULL; when Google
-- refuses the refresh token (invalid_grant) the sync clears it and records why here.
-- A service without a row here has no sync history yet.
CREATE TABLE delightbridge_sync.services (
    account_id               text PRIMARY KEY
                             REFERENCES public.gmail_accounts (id) ON DELETE CASCADE,
    access_token_expires_at  timestamptz,
    disconnected_reason      text,
    disconnected_at          timestamptz,
    last_synced_at           timestamptz,
    last_full_sync_at        timestamptz,
    last_sync_error          text,
    last_sync_error_at       timestamptz,
    watch_expires_at         timestamptz,
    watch_history_id         text,
    watch_renewed_at         timestamptz,
    watch_error              text,
    watch_error_at           timestamptz
);

-- Per mirrored message (emails row): what Gmail says of it beyond the web app's columns.
-- An emails row without one here was written by something else (the web app's own sync,
-- before this service took over).
CREATE TABLE delightbridge_sync.messages (
    email_id        text PRIMARY KEY REFERENCES public.emails (id) ON DELETE CASCADE,
    subject         text,
    cc_email        text NOT NULL DEFAULT '',
    bcc_email       text NOT NULL DEFAULT '',
    reply_to        text NOT NULL DEFAULT '',
    body_text       text,
    snippet         text NOT NULL DEFAULT '',
    label_ids       text[] NOT NULL DEFAULT '{}',
    attachments     jsonb NOT NULL DEFAULT '[]',
    history_id      numeric(20, 0),
    size_estimate   integer,
    content_hash    text,
    parse_problems  text[] NOT NULL DEFAULT '{}',
    -- The sync run that last wrote the message. A full sync writes every message the
    -- mailbox has, so afterwards the account's rows written by any other run are what
    -- the mailbox no longer has.
    synced_run_id   uuid,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per sync attempt: what ran, why, over which history range, and how it ended.
CREATE TABLE delightbridge_sync.runs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id         text NOT NULL REFERENCES public.gmail_accounts (id) ON DELETE CASCADE,
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
CREATE INDEX runs_account_started_idx ON delightbridge_sync.runs (account_id, started_at DESC);
CREATE INDEX runs_running_idx ON delightbridge_sync.runs (account_id) WHERE status = 'running';

-- Watches to stop: Gmail keeps publishing a mailbox's changes until its watch is stopped
-- (users.stop) or lapses (seven days). A service disconnected through the API, or deleted
-- by the web app (a plain DELETE of its gmail_accounts row), queues its watch here with
-- the tokens it had, in the same transaction; the API and the renewal job call
-- users.stop, revoke the tokens, and remove the row. No foreign key: the row outlives
-- the service. Tokens stay as stored (sealed under the account id when
-- TOKEN_ENCRYPTION_KEY is set). A row whose watch has lapsed on its own is removed
-- without a call.
CREATE TABLE delightbridge_sync.watch_stops (
    id                       bigserial PRIMARY KEY,
    account_id               text NOT NULL,
    email                    text NOT NULL,
    refresh_token            text NOT NULL,
    access_token             text,
    access_token_expires_at  timestamptz,
    watch_expires_at         timestamptz,
    reason                   text NOT NULL,
    queued_at                timestamptz NOT NULL DEFAULT now(),
    attempts                 integer NOT NULL DEFAULT 0,
    last_error               text
);

-- The web app deletes a service with a plain DELETE; this queues its watch's stop first.
-- It never makes that DELETE fail: any error (this schema's table renamed or dropped, a
-- column of gmail_accounts gone) becomes a WARNING and the row is deleted all the same.
-- BEFORE, so that the service's row here (watch expiry), which the cascade removes, is
-- still there to read. SECURITY DEFINER: the web app's database role needs no right on
-- this schema.
CREATE FUNCTION delightbridge_sync.queue_watch_stop() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        IF OLD.refresh_token IS NOT NULL THEN
            INSERT INTO delightbridge_sync.watch_stops (
                account_id, email, refresh_token, access_token, access_token_expires_at,
                watch_expires_at, reason)
            SELECT OLD.id, OLD.email, OLD.refresh_token, OLD.access_token,
                   s.access_token_expires_at, s.watch_expires_at, 'deleted'
            FROM (SELECT OLD.id AS account_id) AS deleted
            LEFT JOIN delightbridge_sync.services s ON s.account_id = deleted.account_id;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'delightbridge_sync could not queue the watch stop of deleted service %: %',
            OLD.id, SQLERRM;
    END;
    RETURN OLD;
END
$$;

CREATE TRIGGER delightbridge_sync_queue_watch_stop BEFORE DELETE ON public.gmail_accounts
    FOR EACH ROW EXECUTE FUNCTION delightbridge_sync.queue_watch_stop();

-- Auth.js database sessions, for a deployment whose web app keeps them: the (user id,
-- expiry) of the session whose token is p_token, read from public.sessions as it is. The
-- service creates no sessions table. Either layout is read: the token column is
-- session_token or "sessionToken", the user column user_id or "userId" (any type,
-- compared as text with users.id), and expires is timestamptz, or timestamp read as UTC
-- (what Prisma and Drizzle adapters store). No row when there is no such session or no
-- table with recognisable columns. A PL/pgSQL body carries no dependency, so the web app
-- may alter or drop its table. The token never appears in an error: it is only ever a
-- bound parameter compared as text.
CREATE FUNCTION delightbridge_sync.auth_session(p_token text)
RETURNS TABLE (user_id text, expires timestamptz)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel           regclass := to_regclass('public.sessions');
    token_col     text;
    token_type    text;
    user_col      text;
    expires_type  text;
    token_cond    text;
    expires_expr  text;
BEGIN
    IF rel IS NULL THEN
        RETURN;
    END IF;
    SELECT a.attname, format_type(a.atttypid, NULL) INTO token_col, token_type
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname IN ('session_token', 'sessionToken')
    ORDER BY a.attname = 'session_token' DESC
    LIMIT 1;
    SELECT a.attname INTO user_col
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname IN ('user_id', 'userId')
    ORDER BY a.attname = 'user_id' DESC
    LIMIT 1;
    SELECT format_type(a.atttypid, NULL) INTO expires_type
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = 'expires';
    IF token_col IS NULL OR user_col IS NULL OR expires_type IS NULL THEN
        RETURN;
    END IF;

    -- Text-like token columns compare directly (their index serves the lookup); any other
    -- type (uuid…) compares as text, so a malformed cookie cannot raise a cast error that
    -- would quote it.
    IF token_type IN ('text', 'character varying', 'character') THEN
        token_cond := format('%I = $1', token_col);
    ELSE
        token_cond := format('%I::text = $1', token_col);
    END IF;
    IF expires_type = 'timestamp without time zone' THEN
        expires_expr := 'expires AT TIME ZONE ''UTC''';
    ELSE
        expires_expr := 'expires::timestamptz';
    END IF;

    RETURN QUERY EXECUTE format(
        'SELECT %I::text, %s FROM %s WHERE %s LIMIT 1', user_col, expires_expr, rel, token_cond
    ) USING p_token;
END
$$;
