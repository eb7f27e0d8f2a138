-- Gmail push watches: which services need one, and what renewing them did.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: watch_services
SELECT a.id, a.email, s.watch_expires_at, s.watch_renewed_at, s.watch_error
FROM gmail_accounts a
LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
WHERE a.refresh_token IS NOT NULL
ORDER BY a.id

-- name: watch_record_success
INSERT INTO delightbridge_sync.services (account_id, watch_expires_at, watch_history_id,
                                         watch_renewed_at)
SELECT id, $2, $3, $4 FROM gmail_accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE
SET watch_expires_at = EXCLUDED.watch_expires_at, watch_history_id = EXCLUDED.watch_history_id,
    watch_renewed_at = EXCLUDED.watch_renewed_at, watch_error = NULL, watch_error_at = NULL

-- name: watch_record_failure
INSERT INTO delightbridge_sync.services (account_id, watch_error, watch_error_at)
SELECT id, $2, $3 FROM gmail_accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE
SET watch_error = EXCLUDED.watch_error, watch_error_at = EXCLUDED.watch_error_at

-- name: watch_record_stopped
UPDATE delightbridge_sync.services
SET watch_expires_at = NULL, watch_history_id = NULL, watch_error = NULL, watch_error_at = NULL
WHERE account_id = $1

-- ------------------------------------------------------------- stopping watches

-- Disconnect through the API: queue the watch's stop with the tokens, then clear them,
-- in one statement (so one transaction). Nothing when the service has no tokens.
-- name: watch_disconnect
WITH account AS (
    SELECT a.id, a.email, a.refresh_token, a.access_token, s.access_token_expires_at,
           s.watch_expires_at
    FROM gmail_accounts a
    LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
    WHERE a.id = $1 AND a.refresh_token IS NOT NULL
    FOR UPDATE OF a
), queued AS (
    INSERT INTO delightbridge_sync.watch_stops (account_id, email, refresh_token, access_token,
                                                access_token_expires_at, watch_expires_at,
                                                reason)
    SELECT id, email, refresh_token, access_token, access_token_expires_at,
           watch_expires_at, 'disconnected'
    FROM account
    RETURNING id
), cleared AS (
    UPDATE gmail_accounts g
    SET refresh_token = NULL, access_token = NULL
    FROM account WHERE g.id = account.id
    RETURNING g.id
), state AS (
    INSERT INTO delightbridge_sync.services (account_id, disconnected_reason, disconnected_at)
    SELECT id, $2, now() FROM account
    ON CONFLICT (account_id) DO UPDATE
    SET access_token_expires_at = NULL, disconnected_reason = EXCLUDED.disconnected_reason,
        disconnected_at = EXCLUDED.disconnected_at, watch_expires_at = NULL,
        watch_history_id = NULL, watch_error = NULL, watch_error_at = NULL
)
SELECT queued.id FROM queued, cleared

-- name: watch_stops_pending
SELECT id, account_id, email, refresh_token, access_token, access_token_expires_at,
       watch_expires_at, reason, attempts
FROM delightbridge_sync.watch_stops
WHERE $1::bigint IS NULL OR id = $1
ORDER BY id

-- name: watch_stop_done
DELETE FROM delightbridge_sync.watch_stops WHERE id = $1

-- name: watch_stop_failed
UPDATE delightbridge_sync.watch_stops SET attempts = attempts + 1, last_error = $2 WHERE id = $1

-- Watch health of the connected services, for the API's /metrics: how many have a
-- live watch, one expiring within two days, a lapsed or missing one, or a failed
-- renewal; and how many stops are queued.
-- name: watch_health
SELECT
    count(*) FILTER (WHERE s.watch_expires_at > now() + interval '2 days') AS active,
    count(*) FILTER (WHERE s.watch_expires_at > now()
                       AND s.watch_expires_at <= now() + interval '2 days') AS expiring,
    count(*) FILTER (WHERE s.watch_expires_at IS NULL OR s.watch_expires_at <= now()) AS lapsed,
    count(*) FILTER (WHERE s.watch_error IS NOT NULL) AS failing,
    (SELECT count(*) FROM delightbridge_sync.watch_stops) AS stops_pending
FROM gmail_accounts a
LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
WHERE a.refresh_token IS NOT NULL
