-- The local demo's own services (ids demo-*), created on its first start and kept with
-- its simulated mailboxes (demo-gmail.state) across restarts. Nothing else is touched.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: demo_remove_service
DELETE FROM gmail_accounts WHERE id = $1 AND id LIKE 'demo-%'

-- name: demo_add_service
INSERT INTO gmail_accounts (id, name, email, refresh_token) VALUES ($1, $2, $3, $4)

-- The demo services present, with the refresh token each was connected with.
-- name: demo_services
SELECT id, refresh_token FROM gmail_accounts WHERE id = ANY($1::text[]) AND id LIKE 'demo-%'
