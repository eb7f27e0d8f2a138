-- Gmail push watches: which services need one, and what renewing them did.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: watch_services
SELECT id, email, watch_expires_at, watch_renewed_at, watch_error
FROM gmail_accounts WHERE refresh_token IS NOT NULL ORDER BY id

-- name: watch_record_success
UPDATE gmail_accounts
SET watch_expires_at = $2, watch_history_id = $3, watch_renewed_at = $4,
    watch_error = NULL, watch_error_at = NULL
WHERE id = $1

-- name: watch_record_failure
UPDATE gmail_accounts SET watch_error = $2, watch_error_at = $3 WHERE id = $1

-- name: watch_record_stopped
UPDATE gmail_accounts
SET watch_expires_at = NULL, watch_history_id = NULL, watch_error = NULL, watch_error_at = NULL
WHERE id = $1

-- ------------------------------------------------------------- stopping watches

-- Disconnect through the API: queue the watch's stop with the tokens, then clear them,
-- in one statement (so one transaction). Nothing when the service has no tokens.
-- name: watch_disconnect
WITH account AS (
    SELECT id, email, refresh_token, access_token, access_token_expires_at,
           watch_expires_at
    FROM gmail_accounts WHERE id = $1 AND refresh_token IS NOT NULL
    FOR UPDATE
), queued AS (
    INSERT INTO sync_watch_stops (account_id, email, refresh_token, access_token,
                                  access_token_expires_at, watch_expires_at, reason)
    SELECT id, email, refresh_token, access_token, access_token_expires_at,
           watch_expires_at, 'disconnected'
    FROM account
    RETURNING id
), cleared AS (
    UPDATE gmail_accounts g
    SET refresh_token = NULL, access_token = NULL, access_token_expires_at = NULL,
        disconnected_reason = $2, disconnected_at = now(),
        watch_expires_at = NULL, watch_history_id = NULL, watch_error = NULL,
        watch_error_at = NULL
    FROM account WHERE g.id = account.id
    RETURNING g.id
)
SELECT queued.id FROM queued, cleared

-- name: watch_stops_pending
SELECT id, account_id, email, refresh_token, access_token, access_token_expires_at,
       watch_expires_at, reason, attempts
FROM sync_watch_stops
WHERE $1::bigint IS NULL OR id = $1
ORDER BY id

-- name: watch_stop_done
DELETE FROM sync_watch_stops WHERE id = $1

-- name: watch_stop_failed
UPDATE sync_watch_stops SET attempts = attempts + 1, last_error = $2 WHERE id = $1

-- Watch health of the connected services, for the API's /metrics: how many have a
-- live watch, one expiring within two days, a lapsed or missing one, or a failed
-- renewal; and how many stops are queued.
-- name: watch_health
SELECT
    count(*) FILTER (WHERE watch_expires_at > now() + interval '2 days') AS active,
    count(*) FILTER (WHERE watch_expires_at > now()
                       AND watch_expires_at <= now() + interval '2 days') AS expiring,
    count(*) FILTER (WHERE watch_expires_at IS NULL OR watch_expires_at <= now()) AS lapsed,
    count(*) FILTER (WHERE watch_error IS NOT NULL) AS failing,
    (SELECT count(*) FROM sync_watch_stops) AS stops_pending
FROM gmail_accounts WHERE refresh_token IS NOT NULL
