-- The Pub/Sub consumer: services by notification address, the safety-net sweep.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- Gmail sends the address in its own case. Two rows differing only in case are the same
-- Gmail mailbox: the exact match wins, then the oldest row. (A handful of services: the
-- scan needs no index, and the web app's table may carry none of this service's.)
-- name: consumer_service_by_email
SELECT id, refresh_token IS NOT NULL AS connected, last_history_id
FROM gmail_accounts
WHERE lower(email) = lower($1)
ORDER BY email = $1 DESC, created_at, id
LIMIT 1

-- Connected services whose last successful sync is older than $1 seconds (or never).
-- name: consumer_stale_services
SELECT a.id
FROM gmail_accounts a
LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
WHERE a.refresh_token IS NOT NULL
  AND (s.last_synced_at IS NULL
       OR s.last_synced_at < now() - make_interval(secs => $1::float8))
ORDER BY s.last_synced_at NULLS FIRST, a.id

-- name: consumer_ping
SELECT 1
