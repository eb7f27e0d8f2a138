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
