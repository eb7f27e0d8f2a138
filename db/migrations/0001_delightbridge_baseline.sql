-- The tables of an existing DelightBridge deployment, exactly as its web app keeps
-- them (shared/reference/delightbridge-schema.sql, without its sample rows).
-- Idempotent: on a database the web app already created it changes nothing; on an
-- empty database it creates the same schema.

DO $$
BEGIN
    IF to_regtype('thread_status') IS NULL THEN
        CREATE TYPE thread_status AS ENUM ('inbox', 'sent', 'archived');
    END IF;
    IF to_regtype('email_direction') IS NULL THEN
        CREATE TYPE email_direction AS ENUM ('inbound', 'outbound');
    END IF;
    IF to_regtype('permission_level') IS NULL THEN
        CREATE TYPE permission_level AS ENUM ('view', 'edit', 'send', 'admin');
    END IF;
    IF to_regtype('draft_status') IS NULL THEN
        CREATE TYPE draft_status AS ENUM ('pending', 'ready', 'sent', 'skipped');
    END IF;
    IF to_regtype('send_outbox_status') IS NULL THEN
        CREATE TYPE send_outbox_status AS ENUM ('pending', 'sent', 'failed');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS users (
    id          text PRIMARY KEY,
    google_id   text NOT NULL UNIQUE,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    picture     text,
    permission  permission_level NOT NULL DEFAULT 'view',
    created_at  timestamp NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS workspace_members (
    email       text PRIMARY KEY,
    permission  permission_level NOT NULL DEFAULT 'view',
    created_at  timestamp NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS gmail_accounts (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    email            text NOT NULL UNIQUE,
    color            text NOT NULL DEFAULT '#3b5bdb',
    signature        text NOT NULL DEFAULT '',
    document         text NOT NULL DEFAULT '',
    templates        text NOT NULL DEFAULT '[]',
    access_token     text,
    refresh_token    text,
    last_history_id  text,
    created_at       timestamp NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS categories (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES gmail_accounts(id) ON DELETE CASCADE,
    name        text NOT NULL,
    color       text NOT NULL,
    text_color  text NOT NULL
);

CREATE TABLE IF NOT EXISTS email_threads (
    id                 text PRIMARY KEY,
    account_id         text NOT NULL REFERENCES gmail_accounts(id) ON DELETE CASCADE,
    gmail_thread_id    text,
    subject            text NOT NULL,
    customer_email     text NOT NULL,
    customer_name      text NOT NULL,
    category_id        text,
    status             thread_status NOT NULL DEFAULT 'inbox',
    detected_language  text NOT NULL DEFAULT 'en',
    is_read            boolean NOT NULL DEFAULT false,
    last_message_at    timestamp NOT NULL,
    created_at         timestamp NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS email_threads_account_last_message_idx
    ON email_threads (account_id, last_message_at);
CREATE INDEX IF NOT EXISTS email_threads_gmail_thread_idx ON email_threads (gmail_thread_id);
CREATE UNIQUE INDEX IF NOT EXISTS email_threads_account_gmail_thread_uidx
    ON email_threads (account_id, gmail_thread_id);

CREATE TABLE IF NOT EXISTS emails (
    id                text PRIMARY KEY,
    thread_id         text NOT NULL REFERENCES email_threads(id) ON DELETE CASCADE,
    gmail_message_id  text,
    rfc_message_id    text,
    in_reply_to       text,
    "references"      text,
    from_email        text NOT NULL,
    from_name         text NOT NULL,
    to_email          text NOT NULL,
    body              text NOT NULL,
    direction         email_direction NOT NULL,
    sent_at           timestamp NOT NULL,
    created_at        timestamp NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS emails_thread_sent_at_idx ON emails (thread_id, sent_at);
CREATE INDEX IF NOT EXISTS emails_gmail_message_idx ON emails (gmail_message_id);
CREATE UNIQUE INDEX IF NOT EXISTS emails_gmail_message_uidx ON emails (gmail_message_id);

CREATE TABLE IF NOT EXISTS drafts (
    id           text PRIMARY KEY,
    thread_id    text NOT NULL UNIQUE REFERENCES email_threads(id) ON DELETE CASCADE,
    subject      text NOT NULL DEFAULT '',
    content      text NOT NULL DEFAULT '',
    translation  text NOT NULL DEFAULT '',
    status       draft_status NOT NULL DEFAULT 'pending',
    sent_at      timestamp,
    updated_at   timestamp NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS send_outbox (
    idempotency_key   text PRIMARY KEY,
    thread_id         text NOT NULL REFERENCES email_threads(id) ON DELETE CASCADE,
    draft_updated_at  timestamp,
    status            send_outbox_status NOT NULL DEFAULT 'pending',
    started_at        timestamp,
    gmail_message_id  text,
    error             text,
    created_at        timestamp NOT NULL DEFAULT now(),
    updated_at        timestamp NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS send_outbox_thread_idx ON send_outbox (thread_id);
