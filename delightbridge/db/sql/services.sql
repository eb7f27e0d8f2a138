-- Services: the gmail_accounts rows and their sync and watch state.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- sync_state: 'disconnected' without a refresh token (the web app's meaning), 'error'
-- after a failed sync, else 'connected'.
-- name: services_status
SELECT a.id, a.name, a.email,
       CASE WHEN a.refresh_token IS NULL THEN 'disconnected'
            WHEN s.last_sync_error IS NOT NULL THEN 'error'
            ELSE 'connected' END AS sync_state,
       a.last_history_id, s.last_synced_at, s.watch_expires_at, s.disconnected_reason,
       s.last_sync_error,
       (SELECT count(*) FROM email_threads t WHERE t.account_id = a.id) AS threads,
       (SELECT count(*) FROM emails e JOIN email_threads t ON t.id = e.thread_id
         WHERE t.account_id = a.id) AS messages
FROM gmail_accounts a
LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
ORDER BY a.created_at, a.id

-- name: services_exists
SELECT EXISTS (SELECT 1 FROM gmail_accounts WHERE id = $1)

-- name: tokens_for_update
SELECT id, access_token, refresh_token FROM gmail_accounts
WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL
ORDER BY id FOR UPDATE

-- name: tokens_store
UPDATE gmail_accounts SET access_token = $2, refresh_token = $3 WHERE id = $1

-- Tokens kept until a queued watch stop is done (watch_stops) get sealed too.
-- name: tokens_queued_for_update
SELECT id, account_id, access_token, refresh_token FROM delightbridge_sync.watch_stops
ORDER BY id FOR UPDATE

-- name: tokens_queued_store
UPDATE delightbridge_sync.watch_stops SET access_token = $2, refresh_token = $3 WHERE id = $1
