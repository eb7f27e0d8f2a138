-- New-mail events: the outbox (delightbridge_sync.events) and its delivery.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- In the caller's transaction, in order; the dispatcher is notified when it commits.
-- name: events_record
WITH recorded AS (
    INSERT INTO delightbridge_sync.events (account_id, kind, payload)
    SELECT $1, e.kind, e.payload::jsonb
    FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS e(kind, payload, n)
    ORDER BY e.n
    RETURNING id
)
SELECT pg_notify('delightbridge_sync_events', $1) FROM (SELECT count(*) FROM recorded) AS c

-- The head of each service's queue (its oldest undelivered event) that is due.
-- name: events_due_heads
SELECT h.id, h.account_id
FROM (
    SELECT DISTINCT ON (account_id) id, account_id, next_attempt_at
    FROM delightbridge_sync.events
    WHERE delivered_at IS NULL
    ORDER BY account_id, id
) AS h
WHERE h.next_attempt_at <= now()
ORDER BY h.id
LIMIT $1

-- The head, locked for its delivery: no other dispatcher sends it (or any later event of
-- its service, which waits behind it) meanwhile. NULL when another one holds it.
-- name: events_claim
SELECT id, account_id, kind, payload::text AS payload, created_at, attempts
FROM delightbridge_sync.events
WHERE id = $1 AND delivered_at IS NULL
FOR UPDATE SKIP LOCKED

-- name: events_delivered
UPDATE delightbridge_sync.events
SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = $1

-- name: events_failed
UPDATE delightbridge_sync.events
SET attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + make_interval(secs => $3::float8)
WHERE id = $1

-- When the next head is due (NULL: nothing pending), for the dispatcher's sleep.
-- name: events_next_due
SELECT min(h.next_attempt_at) FROM (
    SELECT DISTINCT ON (account_id) next_attempt_at
    FROM delightbridge_sync.events
    WHERE delivered_at IS NULL
    ORDER BY account_id, id
) AS h

-- name: events_prune
DELETE FROM delightbridge_sync.events
WHERE delivered_at < now() - make_interval(days => $1::int)

-- name: events_backlog
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
FROM delightbridge_sync.events WHERE delivered_at IS NULL

-- name: events_list
SELECT id, account_id, kind, payload::text AS payload, created_at, attempts, last_error,
       delivered_at, next_attempt_at
FROM delightbridge_sync.events
WHERE ($1::text IS NULL OR account_id = $1)
  AND (NOT $2::bool OR delivered_at IS NULL)
ORDER BY id DESC
LIMIT $3

-- Replay: send these again (from the given ids, or every event of a service since a
-- time), at once, in their original order.
-- name: events_replay
UPDATE delightbridge_sync.events
SET delivered_at = NULL, attempts = 0, next_attempt_at = now(), last_error = NULL
WHERE (id = ANY($1::bigint[]))
   OR ($2::text IS NOT NULL AND account_id = $2 AND created_at >= $3::timestamptz)
RETURNING id, account_id
