-- Auth.js sessions: who a session cookie belongs to and whether they are an admin.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- name: auth_user_by_google_id
-- The user a JWT session's "sub" names (users.google_id is Google's sub).
SELECT id, google_id, email, name, permission = 'admin' AS is_admin
FROM users
WHERE google_id = $1

-- name: auth_user_by_email
-- For the admin-session command: the user with this address, exact case first.
SELECT id, google_id, email, name, permission = 'admin' AS is_admin
FROM users
WHERE lower(email) = lower($1)
ORDER BY email = $1 DESC, created_at
LIMIT 1

-- name: auth_database_session
-- A database session (the web app's public.sessions, when it keeps one) and its user:
-- live is false once expired; the user columns are NULL when the session names no
-- existing user. See delightbridge_sync.auth_session (migration 0002).
SELECT s.expires, s.expires > now() AS live,
       u.id, u.email, u.name, u.permission = 'admin' AS is_admin
FROM delightbridge_sync.auth_session($1) AS s
LEFT JOIN users u ON u.id = s.user_id
