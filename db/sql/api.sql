-- The HTTP API: the connect flow and what its answers report.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: api_running_run
-- The run holding a service's lock, for a 409 sync_in_progress answer.
SELECT id FROM sync_runs
WHERE account_id = $1 AND status = 'running'
ORDER BY started_at DESC
LIMIT 1

-- name: api_connect_service
SELECT id, email FROM gmail_accounts WHERE id = $1

-- A (re)connected service: its new tokens, and no trace left of the disconnection.
-- name: api_store_tokens
UPDATE gmail_accounts
SET refresh_token = $2, access_token = $3, access_token_expires_at = $4,
    disconnected_reason = NULL, disconnected_at = NULL
WHERE id = $1
RETURNING id
