-- Upgrade in place from this service's first layout, which kept its state in public: its
-- own tables there (sync_schema_migrations, sync_runs, sync_watch_stops, perhaps
-- sessions), columns added to gmail_accounts, email_threads and emails, an index, a
-- trigger and two functions. The web app's deploy tool would drop all of it. Here its
-- data is copied into delightbridge_sync, then what the service added to public is
-- removed, leaving public as the web app defines it. Nothing happens on a database that
-- never had that layout (no public.sync_schema_migrations).
--
-- What is copied: every service's sync and watch state, the sync metadata of every
-- message the service wrote (rows the web app wrote carry none: all of it NULL or
-- default), every run and every queued watch stop. Not copied: email_threads.updated_at,
-- which nothing reads. A column an older release had not added yet is skipped.

DO $$
DECLARE
    moved   bigint;
    cols    text;
BEGIN
    IF to_regclass('public.sync_schema_migrations') IS NULL THEN
        RETURN;
    END IF;

    -- Services: the columns of services that gmail_accounts has.
    SELECT string_agg(quote_ident(c.column_name), ', ' ORDER BY c.ordinal_position) INTO cols
    FROM information_schema.columns c
    JOIN information_schema.columns g
      ON g.table_schema = 'public' AND g.table_name = 'gmail_accounts'
     AND g.column_name = c.column_name
    WHERE c.table_schema = 'delightbridge_sync' AND c.table_name = 'services'
      AND c.column_name <> 'account_id';
    IF cols IS NOT NULL THEN
        EXECUTE format(
            'INSERT INTO delightbridge_sync.services (account_id, %1$s) '
            'SELECT id, %1$s FROM public.gmail_accounts ON CONFLICT (account_id) DO NOTHING',
            cols);
        GET DIAGNOSTICS moved = ROW_COUNT;
        RAISE NOTICE 'delightbridge_sync: moved the sync state of % services', moved;
    END IF;

    -- Messages: the metadata columns that emails has, for rows the service wrote (a
    -- history id, a content hash or a run id; the web app's own rows have none).
    SELECT string_agg(quote_ident(c.column_name), ', ' ORDER BY c.ordinal_position) INTO cols
    FROM information_schema.columns c
    JOIN information_schema.columns e
      ON e.table_schema = 'public' AND e.table_name = 'emails'
     AND e.column_name = c.column_name
    WHERE c.table_schema = 'delightbridge_sync' AND c.table_name = 'messages'
      AND c.column_name <> 'email_id';
    IF cols IS NOT NULL THEN
        EXECUTE format(
            'INSERT INTO delightbridge_sync.messages (email_id, %1$s) '
            'SELECT id, %1$s FROM public.emails WHERE %2$s '
            'ON CONFLICT (email_id) DO NOTHING',
            cols,
            (SELECT coalesce(string_agg(format('%I IS NOT NULL', column_name), ' OR '), 'false')
             FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = 'emails'
               AND column_name IN ('history_id', 'content_hash', 'synced_run_id')));
        GET DIAGNOSTICS moved = ROW_COUNT;
        RAISE NOTICE 'delightbridge_sync: moved the sync metadata of % messages', moved;
    END IF;

    IF to_regclass('public.sync_runs') IS NOT NULL THEN
        INSERT INTO delightbridge_sync.runs (
            id, account_id, mode, trigger, status, fell_back_to_full, start_history_id,
            end_history_id, threads_processed, messages_processed, messages_deleted, progress,
            error_code, error, started_at, finished_at)
        SELECT r.id, r.account_id, r.mode, r.trigger, r.status, r.fell_back_to_full,
               r.start_history_id, r.end_history_id, r.threads_processed,
               r.messages_processed, r.messages_deleted, r.progress, r.error_code, r.error,
               r.started_at, r.finished_at
        FROM public.sync_runs r
        WHERE EXISTS (SELECT 1 FROM public.gmail_accounts a WHERE a.id = r.account_id)
        ON CONFLICT (id) DO NOTHING;
        DROP TABLE public.sync_runs;
    END IF;

    IF to_regclass('public.sync_watch_stops') IS NOT NULL THEN
        INSERT INTO delightbridge_sync.watch_stops (
            id, account_id, email, refresh_token, access_token, access_token_expires_at,
            watch_expires_at, reason, queued_at, attempts, last_error)
        SELECT id, account_id, email, refresh_token, access_token, access_token_expires_at,
               watch_expires_at, reason, queued_at, attempts, last_error
        FROM public.sync_watch_stops
        ON CONFLICT (id) DO NOTHING;
        PERFORM setval(pg_get_serial_sequence('delightbridge_sync.watch_stops', 'id'),
                       greatest((SELECT max(id) FROM delightbridge_sync.watch_stops), 1));
        DROP TABLE public.sync_watch_stops;
    END IF;

    -- The trigger first: its function reads the columns removed below.
    DROP TRIGGER IF EXISTS sync_queue_watch_stop ON public.gmail_accounts;
    DROP FUNCTION IF EXISTS public.sync_queue_watch_stop();
    DROP FUNCTION IF EXISTS public.sync_auth_session(text);
    DROP INDEX IF EXISTS public.gmail_accounts_lower_email_idx;

    ALTER TABLE public.gmail_accounts
        DROP COLUMN IF EXISTS sync_state,  -- generated from the columns below: first
        DROP COLUMN IF EXISTS access_token_expires_at,
        DROP COLUMN IF EXISTS disconnected_reason,
        DROP COLUMN IF EXISTS disconnected_at,
        DROP COLUMN IF EXISTS last_synced_at,
        DROP COLUMN IF EXISTS last_full_sync_at,
        DROP COLUMN IF EXISTS last_sync_error,
        DROP COLUMN IF EXISTS last_sync_error_at,
        DROP COLUMN IF EXISTS watch_expires_at,
        DROP COLUMN IF EXISTS watch_history_id,
        DROP COLUMN IF EXISTS watch_renewed_at,
        DROP COLUMN IF EXISTS watch_error,
        DROP COLUMN IF EXISTS watch_error_at;
    ALTER TABLE public.email_threads DROP COLUMN IF EXISTS updated_at;
    ALTER TABLE public.emails
        DROP COLUMN IF EXISTS subject,
        DROP COLUMN IF EXISTS cc_email,
        DROP COLUMN IF EXISTS bcc_email,
        DROP COLUMN IF EXISTS reply_to,
        DROP COLUMN IF EXISTS body_text,
        DROP COLUMN IF EXISTS snippet,
        DROP COLUMN IF EXISTS label_ids,
        DROP COLUMN IF EXISTS attachments,
        DROP COLUMN IF EXISTS history_id,
        DROP COLUMN IF EXISTS size_estimate,
        DROP COLUMN IF EXISTS content_hash,
        DROP COLUMN IF EXISTS parse_problems,
        DROP COLUMN IF EXISTS synced_run_id,
        DROP COLUMN IF EXISTS updated_at;

    -- The sessions table the first layout created when the web app had none (columns
    -- session_token, user_id, expires). The web app uses JWT sessions and never wrote to
    -- it; its deploy tool would drop it. Removed only when empty: a table holding
    -- sessions is kept and still read (delightbridge_sync.auth_session).
    IF to_regclass('public.sessions') IS NOT NULL
       AND (SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'public.sessions'::regclass AND attnum > 0
              AND NOT attisdropped) = ARRAY['session_token', 'user_id', 'expires']
    THEN
        IF EXISTS (SELECT 1 FROM public.sessions) THEN
            RAISE NOTICE 'delightbridge_sync: public.sessions holds sessions: kept as it is';
        ELSE
            DROP TABLE public.sessions;
        END IF;
    END IF;

    DROP TABLE public.sync_schema_migrations;
END
$$;
