-- The web app's tables in schema public, exactly as its own deploy tool (drizzle-kit push)
-- creates them at its current release: the same columns, defaults, enums, and every
-- constraint and index under the name that tool gives it. The web app owns them; this
-- service only writes rows into them. Whichever of the two is installed first, the web
-- app's next push finds nothing to change.
--
-- On a database the web app created, this changes nothing, and runs no statement that
-- needs a right on public beyond reading the catalog (so a service role limited to the
-- web app's rows can apply it, see deploy/service-role.sql). On an empty one it creates
-- the tables. On one laid out by an earlier release of either (the web app's release
-- before `service_sender_identities`, or this service's own first baseline, which let
-- PostgreSQL name the constraints), it adds what is missing and renames the constraints
-- to the web app's names; no row is touched.

DO $$
BEGIN
    IF to_regtype('public.thread_status') IS NULL THEN
        CREATE TYPE public.thread_status AS ENUM ('inbox', 'sent', 'archived');
    END IF;
    IF to_regtype('public.email_direction') IS NULL THEN
        CREATE TYPE public.email_direction AS ENUM ('inbound', 'outbound');
    END IF;
    IF to_regtype('public.permission_level') IS NULL THEN
        CREATE TYPE public.permission_level AS ENUM ('view', 'edit', 'send', 'admin');
    END IF;
    IF to_regtype('public.draft_status') IS NULL THEN
        CREATE TYPE public.draft_status AS ENUM ('pending', 'ready', 'sent', 'skipped');
    END IF;
    IF to_regtype('public.send_outbox_status') IS NULL THEN
        CREATE TYPE public.send_outbox_status AS ENUM ('pending', 'sent', 'failed');
    END IF;
END
$$;

-- A database this service laid out before it followed the web app's names: PostgreSQL's
-- default constraint names become the web app's (renaming a unique constraint renames its
-- index too). Only a name that exists is renamed, and only to a name not yet taken.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM (VALUES
            ('users', 'users_google_id_key', 'users_google_id_unique'),
            ('users', 'users_email_key', 'users_email_unique'),
            ('gmail_accounts', 'gmail_accounts_email_key', 'gmail_accounts_email_unique'),
            ('categories', 'categories_account_id_fkey',
             'categories_account_id_gmail_accounts_id_fk'),
            ('email_threads', 'email_threads_account_id_fkey',
             'email_threads_account_id_gmail_accounts_id_fk'),
            ('emails', 'emails_thread_id_fkey', 'emails_thread_id_email_threads_id_fk'),
            ('drafts', 'drafts_thread_id_key', 'drafts_thread_id_unique'),
            ('drafts', 'drafts_thread_id_fkey', 'drafts_thread_id_email_threads_id_fk'),
            ('send_outbox', 'send_outbox_thread_id_fkey',
             'send_outbox_thread_id_email_threads_id_fk')
        ) AS renames (tbl, old_name, new_name)
    LOOP
        IF EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = to_regclass('public.' || r.tbl) AND conname = r.old_name)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint
                           WHERE connamespace = 'public'::regnamespace
                             AND conname = r.new_name)
        THEN
            EXECUTE format('ALTER TABLE public.%I RENAME CONSTRAINT %I TO %I',
                           r.tbl, r.old_name, r.new_name);
        END IF;
    END LOOP;
END
$$;

-- Each table, column and index only where it is missing.
DO $$
BEGIN
    IF to_regclass('public.users') IS NULL THEN
        CREATE TABLE public.users (
            id          text NOT NULL,
            google_id   text NOT NULL,
            email       text NOT NULL,
            name        text NOT NULL,
            picture     text,
            permission  public.permission_level NOT NULL DEFAULT 'view',
            created_at  timestamp NOT NULL DEFAULT now(),
            CONSTRAINT users_pkey PRIMARY KEY (id),
            CONSTRAINT users_google_id_unique UNIQUE (google_id),
            CONSTRAINT users_email_unique UNIQUE (email)
        );
    END IF;
    IF to_regclass('public.workspace_members') IS NULL THEN
        CREATE TABLE public.workspace_members (
            email       text NOT NULL,
            permission  public.permission_level NOT NULL DEFAULT 'view',
            created_at  timestamp NOT NULL DEFAULT now(),
            CONSTRAINT workspace_members_pkey PRIMARY KEY (email)
        );
    END IF;
    IF to_regclass('public.gmail_accounts') IS NULL THEN
        CREATE TABLE public.gmail_accounts (
            id               text NOT NULL,
            name             text NOT NULL,
            email            text NOT NULL,
            color            text NOT NULL DEFAULT '#3b5bdb',
            signature        text NOT NULL DEFAULT '',
            document         text NOT NULL DEFAULT '',
            templates        text NOT NULL DEFAULT '[]',
            access_token     text,
            refresh_token    text,
            last_history_id  text,
            created_at       timestamp NOT NULL DEFAULT now(),
            CONSTRAINT gmail_accounts_pkey PRIMARY KEY (id),
            CONSTRAINT gmail_accounts_email_unique UNIQUE (email)
        );
    END IF;
    IF to_regclass('public.service_sender_identities') IS NULL THEN
        CREATE TABLE public.service_sender_identities (
            id            text NOT NULL,
            account_id    text NOT NULL,
            email         text NOT NULL,
            display_name  text NOT NULL DEFAULT '',
            is_default    boolean NOT NULL DEFAULT false,
            is_enabled    boolean NOT NULL DEFAULT true,
            created_at    timestamp NOT NULL DEFAULT now(),
            CONSTRAINT service_sender_identities_pkey PRIMARY KEY (id),
            CONSTRAINT service_sender_identities_account_id_gmail_accounts_id_fk
                FOREIGN KEY (account_id) REFERENCES public.gmail_accounts(id) ON DELETE CASCADE
        );
    END IF;
    IF to_regclass('public.service_sender_identities_account_email_uidx') IS NULL THEN
        CREATE UNIQUE INDEX service_sender_identities_account_email_uidx
            ON public.service_sender_identities (account_id, email);
    END IF;
    IF to_regclass('public.service_sender_identities_account_idx') IS NULL THEN
        CREATE INDEX service_sender_identities_account_idx
            ON public.service_sender_identities (account_id);
    END IF;
    IF to_regclass('public.categories') IS NULL THEN
        CREATE TABLE public.categories (
            id          text NOT NULL,
            account_id  text NOT NULL,
            name        text NOT NULL,
            color       text NOT NULL,
            text_color  text NOT NULL,
            CONSTRAINT categories_pkey PRIMARY KEY (id),
            CONSTRAINT categories_account_id_gmail_accounts_id_fk
                FOREIGN KEY (account_id) REFERENCES public.gmail_accounts(id) ON DELETE CASCADE
        );
    END IF;
    IF to_regclass('public.email_threads') IS NULL THEN
        CREATE TABLE public.email_threads (
            id                 text NOT NULL,
            account_id         text NOT NULL,
            gmail_thread_id    text,
            subject            text NOT NULL,
            customer_email     text NOT NULL,
            customer_name      text NOT NULL,
            category_id        text,
            reply_from_email   text,
            status             public.thread_status NOT NULL DEFAULT 'inbox',
            detected_language  text NOT NULL DEFAULT 'en',
            is_read            boolean NOT NULL DEFAULT false,
            last_message_at    timestamp NOT NULL,
            created_at         timestamp NOT NULL DEFAULT now(),
            CONSTRAINT email_threads_pkey PRIMARY KEY (id),
            CONSTRAINT email_threads_account_id_gmail_accounts_id_fk
                FOREIGN KEY (account_id) REFERENCES public.gmail_accounts(id) ON DELETE CASCADE
        );
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = 'email_threads'
                     AND column_name = 'reply_from_email') THEN
        ALTER TABLE public.email_threads ADD COLUMN reply_from_email text;
    END IF;
    IF to_regclass('public.email_threads_account_last_message_idx') IS NULL THEN
        CREATE INDEX email_threads_account_last_message_idx
            ON public.email_threads (account_id, last_message_at);
    END IF;
    IF to_regclass('public.email_threads_gmail_thread_idx') IS NULL THEN
        CREATE INDEX email_threads_gmail_thread_idx
            ON public.email_threads (gmail_thread_id);
    END IF;
    IF to_regclass('public.email_threads_account_gmail_thread_uidx') IS NULL THEN
        CREATE UNIQUE INDEX email_threads_account_gmail_thread_uidx
            ON public.email_threads (account_id, gmail_thread_id);
    END IF;
    IF to_regclass('public.emails') IS NULL THEN
        CREATE TABLE public.emails (
            id                text NOT NULL,
            thread_id         text NOT NULL,
            gmail_message_id  text,
            rfc_message_id    text,
            in_reply_to       text,
            "references"      text,
            from_email        text NOT NULL,
            from_name         text NOT NULL,
            to_email          text NOT NULL,
            to_header         text,
            cc_header         text,
            body              text NOT NULL,
            direction         public.email_direction NOT NULL,
            sent_at           timestamp NOT NULL,
            created_at        timestamp NOT NULL DEFAULT now(),
            CONSTRAINT emails_pkey PRIMARY KEY (id),
            CONSTRAINT emails_thread_id_email_threads_id_fk
                FOREIGN KEY (thread_id) REFERENCES public.email_threads(id) ON DELETE CASCADE
        );
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = 'emails'
                     AND column_name = 'to_header') THEN
        ALTER TABLE public.emails ADD COLUMN to_header text;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = 'emails'
                     AND column_name = 'cc_header') THEN
        ALTER TABLE public.emails ADD COLUMN cc_header text;
    END IF;
    IF to_regclass('public.emails_thread_sent_at_idx') IS NULL THEN
        CREATE INDEX emails_thread_sent_at_idx ON public.emails (thread_id, sent_at);
    END IF;
    IF to_regclass('public.emails_gmail_message_idx') IS NULL THEN
        CREATE INDEX emails_gmail_message_idx ON public.emails (gmail_message_id);
    END IF;
    IF to_regclass('public.emails_gmail_message_uidx') IS NULL THEN
        CREATE UNIQUE INDEX emails_gmail_message_uidx ON public.emails (gmail_message_id);
    END IF;
    IF to_regclass('public.drafts') IS NULL THEN
        CREATE TABLE public.drafts (
            id           text NOT NULL,
            thread_id    text NOT NULL,
            subject      text NOT NULL DEFAULT '',
            content      text NOT NULL DEFAULT '',
            translation  text NOT NULL DEFAULT '',
            status       public.draft_status NOT NULL DEFAULT 'pending',
            sent_at      timestamp,
            updated_at   timestamp NOT NULL DEFAULT now(),
            CONSTRAINT drafts_pkey PRIMARY KEY (id),
            CONSTRAINT drafts_thread_id_unique UNIQUE (thread_id),
            CONSTRAINT drafts_thread_id_email_threads_id_fk
                FOREIGN KEY (thread_id) REFERENCES public.email_threads(id) ON DELETE CASCADE
        );
    END IF;
    IF to_regclass('public.send_outbox') IS NULL THEN
        CREATE TABLE public.send_outbox (
            idempotency_key   text NOT NULL,
            thread_id         text NOT NULL,
            draft_updated_at  timestamp,
            status            public.send_outbox_status NOT NULL DEFAULT 'pending',
            started_at        timestamp,
            gmail_message_id  text,
            error             text,
            created_at        timestamp NOT NULL DEFAULT now(),
            updated_at        timestamp NOT NULL DEFAULT now(),
            CONSTRAINT send_outbox_pkey PRIMARY KEY (idempotency_key),
            CONSTRAINT send_outbox_thread_id_email_threads_id_fk
                FOREIGN KEY (thread_id) REFERENCES public.email_threads(id) ON DELETE CASCADE
        );
    END IF;
    IF to_regclass('public.send_outbox_thread_idx') IS NULL THEN
        CREATE INDEX send_outbox_thread_idx ON public.send_outbox (thread_id);
    END IF;
END
$$;
