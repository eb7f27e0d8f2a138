-- The project's Gmail quota, shared by every process (syncengine/budget.py).
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- One lease at a time per scope: taken first in the lease's transaction, so the sums
-- below see every lease committed before.
-- name: budget_lock
SELECT pg_advisory_xact_lock($1::int, hashtext($2))

-- Grant $2 units to scope $1 if the leases of the last $3 seconds plus them stay within
-- $4, and today's units ($5, a Pacific date) plus them within $6 (NULL: no daily limit).
-- Returns whether granted, what the window and the day hold (before it), and when the
-- oldest lease of the window leaves it.
-- name: budget_lease
WITH used AS (
    SELECT coalesce(sum(units), 0)::bigint AS window_units, min(granted_at) AS oldest
    FROM delightbridge_sync.quota_leases
    WHERE scope = $1 AND granted_at > clock_timestamp() - make_interval(secs => $3::float8)
), today AS (
    SELECT coalesce((SELECT units FROM delightbridge_sync.quota_days WHERE day = $5::date),
                    0)::bigint AS day_units
), granted AS (
    INSERT INTO delightbridge_sync.quota_leases (scope, units)
    SELECT $1, $2 FROM used, today
    WHERE used.window_units + $2 <= $4 AND ($6::bigint IS NULL OR today.day_units + $2 <= $6)
    RETURNING units
), counted AS (
    -- The project's day only ($7): a mailbox's leases are counted by the project's too.
    INSERT INTO delightbridge_sync.quota_days (day, units)
    SELECT $5::date, units FROM granted WHERE $7::boolean
    ON CONFLICT (day) DO UPDATE SET units = quota_days.units + EXCLUDED.units
)
SELECT EXISTS (SELECT 1 FROM granted) AS granted, used.window_units, today.day_units,
       extract(epoch FROM used.oldest + make_interval(secs => $3::float8)
               - clock_timestamp())::float8 AS frees_in
FROM used, today

-- name: budget_prune
DELETE FROM delightbridge_sync.quota_leases
WHERE granted_at < clock_timestamp() - make_interval(secs => $1::float8)

-- name: budget_day
SELECT coalesce((SELECT units FROM delightbridge_sync.quota_days WHERE day = $1::date), 0)
