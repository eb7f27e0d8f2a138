-- The Pub/Sub consumer: services by notification address, the safety-net sweep.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- Gmail sends the address in its own case; the lower(email) index serves this. Two
-- rows differing only in case are the same Gmail mailbox: the exact match wins, then
-- the oldest row.
-- name: consumer_service_by_email
SELECT id, refresh_token IS NOT NULL AS connected, last_history_id
FROM gmail_accounts
WHERE lower(email) = lower($1)
ORDER BY email = $1 DESC, created_at, id
LIMIT 1

-- Connected services whose last successful sync is older than $1 seconds (or never).
-- name: consumer_stale_services
SELECT id
FROM gmail_accounts
WHERE refresh_token IS NOT NULL
  AND (last_synced_at IS NULL OR last_synced_at < now() - make_interval(secs => $1::float8))
ORDER BY last_synced_at NULLS FIRST, id

-- name: consumer_ping
SELECT 1
