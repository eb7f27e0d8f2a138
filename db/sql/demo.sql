-- The local demo's own services (ids demo-*), reset on every start because the
-- simulator's mailboxes start afresh. Nothing else is touched.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: demo_remove_service
DELETE FROM gmail_accounts WHERE id = $1 AND id LIKE 'demo-%'

-- name: demo_add_service
INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $2, $3, $4)
