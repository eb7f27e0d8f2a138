-- New-mail events for the web app: an outbox of committed changes, written in the same
-- transaction as the rows they describe, delivered at least once, in order per service,
-- to the configured EVENTS_URL (syncengine/outbox.py). Kinds:
--   message.received        a new inbound message was mirrored into a thread
--   thread.status_changed   a thread's status (inbox, sent, archived) changed
-- Rows stay until delivered, whatever the receiver does; delivered rows are removed a
-- week later. A deleted service takes its undelivered events along (nothing to tell).
CREATE TABLE delightbridge_sync.events (
    id               bigserial PRIMARY KEY,
    account_id       text NOT NULL REFERENCES public.gmail_accounts (id) ON DELETE CASCADE,
    kind             text NOT NULL
                     CHECK (kind IN ('message.received', 'thread.status_changed')),
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz
);
-- The head of each service's queue: its oldest undelivered event.
CREATE INDEX events_pending_idx ON delightbridge_sync.events (account_id, id)
    WHERE delivered_at IS NULL;
CREATE INDEX events_delivered_idx ON delightbridge_sync.events (delivered_at)
    WHERE delivered_at IS NOT NULL;
