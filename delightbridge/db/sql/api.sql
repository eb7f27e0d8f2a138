-- The HTTP API: the connect flow and what its answers report.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: api_running_run
-- The run holding a service's lock, for a 409 sync_in_progress answer.
SELECT id FROM delightbridge_sync.runs
WHERE account_id = $1 AND status = 'running'
ORDER BY started_at DESC
LIMIT 1

-- name: api_connect_service
SELECT id, email FROM gmail_accounts WHERE id = $1

-- A (re)connected service: its new tokens, its mailbox's address when it had the web
-- app's placeholder ($5; NULL keeps the address), and no trace left of the disconnection.
-- name: api_store_tokens
WITH account AS (
    UPDATE gmail_accounts SET refresh_token = $2, access_token = $3,
                              email = coalesce($5, email)
    WHERE id = $1
    RETURNING id
), state AS (
    INSERT INTO delightbridge_sync.services (account_id, access_token_expires_at)
    SELECT id, $4 FROM account
    ON CONFLICT (account_id) DO UPDATE
    SET access_token_expires_at = EXCLUDED.access_token_expires_at,
        disconnected_reason = NULL, disconnected_at = NULL
)
SELECT id FROM account
