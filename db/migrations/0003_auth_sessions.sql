-- Auth.js database sessions: the cookie holds an opaque token, looked up in "sessions".
--
-- DelightBridge runs Auth.js with JWT sessions today, so its database usually has no
-- "sessions" table; this creates one with the columns the project's issue names
-- (session_token, user_id -> users.id, expires). A deployment that already has one,
-- for example the @auth/pg-adapter's ("sessionToken", "userId", expires), keeps it
-- untouched: nothing here alters, indexes or depends on a table we did not create.
-- Reads go through sync_auth_session(), which finds the columns of whichever layout
-- is present when it runs, so no named query hard-codes one layout.

DO $$
BEGIN
    IF to_regclass('sessions') IS NULL THEN
        CREATE TABLE sessions (
            session_token  text PRIMARY KEY,
            user_id        text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            expires        timestamptz NOT NULL
        );
        CREATE INDEX sessions_user_id_idx ON sessions (user_id);
    ELSE
        RAISE NOTICE 'table "sessions" exists already: keeping it as it is';
    END IF;
END
$$;

-- The (user id, expiry) of the session whose token is p_token, from "sessions" in
-- either layout: the token column is session_token or "sessionToken", the user column
-- user_id or "userId" (any type, compared as text with users.id), and expires is
-- timestamptz, or timestamp read as UTC (what Prisma and Drizzle adapters store).
-- No row when there is no such session or no table with recognisable columns.
-- PL/pgSQL bodies carry no dependency, so the web app may still alter or drop its
-- own table. The token never appears in an error: it is only ever a bound parameter
-- compared as text.
CREATE OR REPLACE FUNCTION sync_auth_session(p_token text)
RETURNS TABLE (user_id text, expires timestamptz)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    rel           regclass := to_regclass('sessions');
    token_col     text;
    token_type    text;
    user_col      text;
    expires_type  text;
    token_cond    text;
    expires_expr  text;
BEGIN
    IF rel IS NULL THEN
        RETURN;
    END IF;
    SELECT a.attname, format_type(a.atttypid, NULL) INTO token_col, token_type
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname IN ('session_token', 'sessionToken')
    ORDER BY a.attname = 'session_token' DESC
    LIMIT 1;
    SELECT a.attname INTO user_col
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname IN ('user_id', 'userId')
    ORDER BY a.attname = 'user_id' DESC
    LIMIT 1;
    SELECT format_type(a.atttypid, NULL) INTO expires_type
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = 'expires';
    IF token_col IS NULL OR user_col IS NULL OR expires_type IS NULL THEN
        RETURN;
    END IF;

    -- Text-like token columns compare directly (their index serves the lookup); any
    -- other type (uuid…) compares as text, so a malformed cookie cannot raise a cast
    -- error that would quote it.
    IF token_type IN ('text', 'character varying', 'character') THEN
        token_cond := format('%I = $1', token_col);
    ELSE
        token_cond := format('%I::text = $1', token_col);
    END IF;
    IF expires_type = 'timestamp without time zone' THEN
        expires_expr := 'expires AT TIME ZONE ''UTC''';
    ELSE
        expires_expr := 'expires::timestamptz';
    END IF;

    RETURN QUERY EXECUTE format(
        'SELECT %I::text, %s FROM %s WHERE %s LIMIT 1', user_col, expires_expr, rel, token_cond
    ) USING p_token;
END
$$;
