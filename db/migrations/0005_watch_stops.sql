-- Watches to stop: Gmail keeps publishing a mailbox's changes until its watch is
-- stopped (users.stop) or lapses (seven days). A service disconnected through the API,
-- or deleted by the web app (a plain DELETE of its gmail_accounts row), queues its
-- watch here with the tokens it had, in the same transaction; the API and the renewal
-- job call users.stop, revoke the tokens, and remove the row. Tokens stay as stored
-- (sealed under the account id when TOKEN_ENCRYPTION_KEY is set). A row whose watch
-- has lapsed on its own is removed without a call.
CREATE TABLE IF NOT EXISTS sync_watch_stops (
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

CREATE OR REPLACE FUNCTION sync_queue_watch_stop() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.refresh_token IS NOT NULL THEN
        INSERT INTO sync_watch_stops (account_id, email, refresh_token, access_token,
                                      access_token_expires_at, watch_expires_at, reason)
        VALUES (OLD.id, OLD.email, OLD.refresh_token, OLD.access_token,
                OLD.access_token_expires_at, OLD.watch_expires_at, 'deleted');
    END IF;
    RETURN OLD;
END
$$;

DROP TRIGGER IF EXISTS sync_queue_watch_stop ON gmail_accounts;
CREATE TRIGGER sync_queue_watch_stop AFTER DELETE ON gmail_accounts
    FOR EACH ROW EXECUTE FUNCTION sync_queue_watch_stop();
