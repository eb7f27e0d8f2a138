-- A database role for DelightBridge Sync that can touch only what it should. Optional:
-- without it the service runs as any role that owns the database.
--
-- Run once, as the database's owner (the web app's role) or a superuser, in the
-- DelightBridge database, after the web app's first deploy (`npm run db:push`):
--
--     psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/service-role.sql
--     psql "$OWNER_DATABASE_URL" -c "ALTER ROLE delightbridge_sync_svc PASSWORD '…'"
--
-- then give the service DATABASE_URL=postgres://delightbridge_sync_svc:…@host/db. Safe to
-- run again (after a web app release, say): it only grants.
--
-- What the role may do:
-- * own its schema, delightbridge_sync, where the service keeps everything of its own;
-- * in schema public, which the web app owns and deploys: read the users and, where the
--   web app keeps them, Auth.js database sessions; read services and write only their
--   tokens, Gmail cursor and (for a placeholder service being connected) address; write
--   threads, messages and the services' sender identities; read drafts and sends in
--   flight, so that it never deletes a thread holding them; reference services and
--   messages from its own tables; keep one trigger on gmail_accounts (queueing the watch
--   stop of a service the web app deletes).
-- It cannot create, alter or drop anything in public, nor change drafts, categories,
-- members or anything else the agents own.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'delightbridge_sync_svc') THEN
        CREATE ROLE delightbridge_sync_svc LOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO delightbridge_sync_svc', current_database());
    IF to_regnamespace('delightbridge_sync') IS NULL THEN
        CREATE SCHEMA delightbridge_sync AUTHORIZATION delightbridge_sync_svc;
    END IF;
    -- Auth.js database sessions, when the web app keeps them (JWT sessions need none).
    IF to_regclass('public.sessions') IS NOT NULL THEN
        GRANT SELECT ON public.sessions TO delightbridge_sync_svc;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO delightbridge_sync_svc;
GRANT SELECT ON public.users TO delightbridge_sync_svc;
GRANT SELECT, REFERENCES, TRIGGER ON public.gmail_accounts TO delightbridge_sync_svc;
GRANT UPDATE (access_token, refresh_token, last_history_id, email)
    ON public.gmail_accounts TO delightbridge_sync_svc;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.email_threads TO delightbridge_sync_svc;
GRANT SELECT, INSERT, UPDATE, DELETE, REFERENCES ON public.emails TO delightbridge_sync_svc;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON public.service_sender_identities TO delightbridge_sync_svc;
GRANT SELECT ON public.drafts, public.send_outbox TO delightbridge_sync_svc;
