-- The sync engine: per-service lock, runs, cursor, tokens, messages and threads.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- ---------------------------------------------------------------- service

-- name: sync_service
SELECT a.id, a.email, a.access_token, s.access_token_expires_at, a.refresh_token,
       a.last_history_id, s.disconnected_reason, s.last_full_sync_at, s.last_synced_at
FROM gmail_accounts a
LEFT JOIN delightbridge_sync.services s ON s.account_id = a.id
WHERE a.id = $1

-- Stored only while the grant it came from is still the service's: not after a
-- disconnect, nor over the tokens of a reconnect.
-- name: sync_store_access_token
WITH account AS (
    UPDATE gmail_accounts SET access_token = $2
    WHERE id = $1 AND refresh_token = $4
    RETURNING id
)
INSERT INTO delightbridge_sync.services (account_id, access_token_expires_at)
SELECT id, $3 FROM account
ON CONFLICT (account_id) DO UPDATE
SET access_token_expires_at = EXCLUDED.access_token_expires_at

-- Only the refresh token that Google refused is cleared: a reconnect that stored a new
-- one meanwhile is kept.
-- name: sync_disconnect
WITH account AS (
    UPDATE gmail_accounts SET refresh_token = NULL, access_token = NULL
    WHERE id = $1 AND refresh_token = $2
    RETURNING id
)
INSERT INTO delightbridge_sync.services (account_id, disconnected_reason, disconnected_at)
SELECT id, $3, now() FROM account
ON CONFLICT (account_id) DO UPDATE
SET access_token_expires_at = NULL, disconnected_reason = EXCLUDED.disconnected_reason,
    disconnected_at = EXCLUDED.disconnected_at

-- The cursor only moves forward, compared as numbers; a non-numeric value left by
-- anything else counts as no cursor.
-- name: sync_advance_cursor
UPDATE gmail_accounts SET last_history_id = $2::numeric::text
WHERE id = $1
  AND (last_history_id IS NULL OR last_history_id !~ '^[0-9]{1,20}$'
       OR last_history_id::numeric < $2::numeric)

-- The service's state row is created by its first write; never for a deleted service.
-- name: sync_mark_succeeded
INSERT INTO delightbridge_sync.services (account_id, last_synced_at, last_full_sync_at)
SELECT id, now(), CASE WHEN $2 THEN now() END FROM gmail_accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE
SET last_synced_at = now(), last_sync_error = NULL, last_sync_error_at = NULL,
    last_full_sync_at = CASE WHEN $2 THEN now() ELSE services.last_full_sync_at END

-- name: sync_mark_failed
INSERT INTO delightbridge_sync.services (account_id, last_sync_error, last_sync_error_at)
SELECT id, $2, now() FROM gmail_accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE
SET last_sync_error = EXCLUDED.last_sync_error, last_sync_error_at = now()

-- Whether the service has messages the service knows nothing of beyond the web app's
-- columns (written by the web app's own sync).
-- name: sync_has_unknown_messages
SELECT EXISTS (
    SELECT 1 FROM emails e
    JOIN email_threads t ON t.id = e.thread_id
    WHERE t.account_id = $1
      AND NOT EXISTS (SELECT 1 FROM delightbridge_sync.messages m WHERE m.email_id = e.id)
)

-- ---------------------------------------------------------------- lock

-- name: sync_try_lock
SELECT pg_try_advisory_lock($1::int, hashtext($2))

-- name: sync_lock
SELECT pg_advisory_lock($1::int, hashtext($2))

-- name: sync_unlock
SELECT pg_advisory_unlock($1::int, hashtext($2))

-- name: sync_set_lock_timeout
SELECT set_config('lock_timeout', $1, false)

-- Writes to one mailbox's mirror, one transaction at a time (an import's page and an
-- incremental's page may run at once): taken first, so the statements after it see
-- every write committed before.
-- name: sync_write_lock
SELECT pg_advisory_xact_lock($1::int, hashtext($2))

-- ---------------------------------------------------------------- runs

-- A new run, or an import's run taken up again (resumed): running again, as it was.
-- name: sync_run_start
INSERT INTO delightbridge_sync.runs (id, account_id, mode, trigger, start_history_id)
VALUES ($1, $2, $3, $4, $5::numeric)
ON CONFLICT (id) DO UPDATE
SET status = 'running', finished_at = NULL, error_code = NULL, error = NULL
RETURNING fell_back_to_full, start_history_id::text AS start_history_id

-- A run still 'running' when its service's lock is free was interrupted (its process died),
-- unless it is an import's, which waits to be resumed.
-- name: sync_run_interrupted
UPDATE delightbridge_sync.runs SET status = 'failed', finished_at = now(), error_code = 'interrupted',
       error = 'the process running this sync stopped before it finished'
WHERE account_id = $1 AND status = 'running' AND id <> $2
  AND id NOT IN (SELECT run_id FROM delightbridge_sync.imports
                 WHERE account_id = $1 AND status IN ('pending', 'running'))

-- name: sync_run_progress
UPDATE delightbridge_sync.runs
SET progress = $2::jsonb, threads_processed = $3, messages_processed = $4,
    messages_deleted = $5, mode = $6, fell_back_to_full = $7
WHERE id = $1

-- name: sync_run_finish
UPDATE delightbridge_sync.runs
SET status = $2, finished_at = now(), end_history_id = $3::numeric, threads_processed = $4,
    messages_processed = $5, messages_deleted = $6, mode = $7, fell_back_to_full = $8,
    error_code = $9, error = $10
WHERE id = $1

-- name: sync_run_get
SELECT id, account_id, mode, trigger, status, fell_back_to_full, start_history_id::text,
       end_history_id::text, threads_processed, messages_processed, messages_deleted,
       progress, error_code, error, started_at, finished_at
FROM delightbridge_sync.runs WHERE account_id = $1 AND id = $2

-- name: sync_runs_recent
SELECT id, account_id, mode, trigger, status, fell_back_to_full, start_history_id::text,
       end_history_id::text, threads_processed, messages_processed, messages_deleted,
       progress, error_code, error, started_at, finished_at
FROM delightbridge_sync.runs WHERE account_id = $1 ORDER BY started_at DESC LIMIT $2

-- ---------------------------------------------------------------- threads

-- Creates missing thread rows with a provisional summary; the real one is written by
-- sync_threads_update once the thread's messages are stored.
-- name: sync_threads_ensure
INSERT INTO email_threads (id, account_id, gmail_thread_id, subject, customer_email,
                           customer_name, last_message_at)
SELECT 'thread-' || $1 || '-' || g, $1, g, '', '', '', now()
FROM unnest($2::text[]) AS g
ON CONFLICT (account_id, gmail_thread_id) DO NOTHING
RETURNING id

-- name: sync_thread_ids
SELECT gmail_thread_id, id FROM email_threads
WHERE account_id = $1 AND gmail_thread_id = ANY($2::text[])

-- A message without sync metadata (the web app wrote it) has NULL labels and subject:
-- unknown, not empty. With each, its thread's current reply_from_email.
-- name: sync_thread_members
SELECT e.thread_id, e.gmail_message_id, e.direction::text AS direction, e.from_email,
       e.from_name, e.to_email, e.to_header, e.cc_header, m.label_ids, e.sent_at,
       m.subject, t.reply_from_email
FROM emails e
JOIN email_threads t ON t.id = e.thread_id
LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id
WHERE e.thread_id = ANY($1::text[])

-- The addresses the service may answer from, the oldest first.
-- name: sync_sender_identities
SELECT email, is_default, is_enabled FROM service_sender_identities
WHERE account_id = $1
ORDER BY created_at, id

-- A NULL subject, status or is_read is unknown (the newest message was written by the
-- web app): the stored value stays. Returns each changed thread's status before (the
-- joined row is the one the statement started with) and after.
-- name: sync_threads_update
UPDATE email_threads AS t
SET subject = coalesce(u.subject, t.subject), customer_email = u.customer_email,
    customer_name = u.customer_name, status = coalesce(u.status::thread_status, t.status),
    is_read = coalesce(u.is_read, t.is_read), last_message_at = u.last_message_at,
    reply_from_email = u.reply_from_email
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[],
            $7::timestamp[], $8::text[])
     AS u(id, subject, customer_email, customer_name, status, is_read, last_message_at,
          reply_from_email),
     email_threads AS before
WHERE t.id = u.id AND before.id = t.id
  AND (t.subject, t.customer_email, t.customer_name, t.status::text, t.is_read,
       t.last_message_at, t.reply_from_email)
      IS DISTINCT FROM
      (coalesce(u.subject, t.subject), u.customer_email, u.customer_name,
       coalesce(u.status, t.status::text), coalesce(u.is_read, t.is_read), u.last_message_at,
       u.reply_from_email)
RETURNING t.id, before.status::text AS old_status, t.status::text AS new_status, t.is_read

-- Threads about to be removed, locked first: once locked, the web app cannot attach a
-- draft or a send to them (its foreign key waits), so the check below sees them all.
-- name: sync_threads_lock
SELECT id FROM email_threads WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE

-- name: sync_threads_empty_for_update
SELECT t.id FROM email_threads t
WHERE t.account_id = $1 AND NOT EXISTS (SELECT 1 FROM emails e WHERE e.thread_id = t.id)
ORDER BY t.id
FOR UPDATE

-- Empty threads (no message left: Gmail deleted, trashed or spammed them all) are
-- deleted, except those holding the agents' work, a draft or a send in flight: those
-- stay, archived, with their draft. Call with the threads locked.
-- name: sync_threads_remove_empty
WITH empty AS (
    SELECT t.id,
           EXISTS (SELECT 1 FROM drafts d WHERE d.thread_id = t.id)
           OR EXISTS (SELECT 1 FROM send_outbox o WHERE o.thread_id = t.id) AS has_work
    FROM email_threads t
    WHERE t.id = ANY($1::text[]) AND NOT EXISTS (SELECT 1 FROM emails e WHERE e.thread_id = t.id)
), kept AS (
    UPDATE email_threads t SET status = 'archived'
    FROM empty WHERE t.id = empty.id AND empty.has_work AND t.status <> 'archived'
)
DELETE FROM email_threads t USING empty
WHERE t.id = empty.id AND NOT empty.has_work

-- ---------------------------------------------------------------- messages

-- A page of messages in one statement (one array a column): the web app's emails row,
-- keyed by Gmail's message id, and the service's metadata of it. A row of another
-- service with the same Gmail id is never overwritten (the WHERE clause): it is not
-- returned, gets no metadata, and the caller counts it as a conflict. The ids must be
-- distinct. label_ids and parse_problems arrive as JSON arrays (arrays of arrays cannot
-- be ragged).
-- name: sync_emails_upsert
WITH u AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamp[],
                $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                $19::jsonb[], $20::jsonb[], $21::numeric[], $22::integer[], $23::text[],
                $24::jsonb[], $25::text[], $26::text[])
         AS u(id, thread_id, gmail_message_id, rfc_message_id, in_reply_to, refs, from_email,
              from_name, to_email, body, direction, sent_at, subject, cc_email, bcc_email,
              reply_to, body_text, snippet, label_ids, attachments, history_id, size_estimate,
              content_hash, parse_problems, to_header, cc_header)
), fresh AS (
    -- Never over a newer state (an incremental's, during an import) nor over a removal
    -- recorded after this copy was read.
    SELECT u.* FROM u
    WHERE NOT EXISTS (
        SELECT 1 FROM emails e JOIN delightbridge_sync.messages m ON m.email_id = e.id
        WHERE e.gmail_message_id = u.gmail_message_id AND m.history_id > u.history_id)
      AND NOT EXISTS (
        SELECT 1 FROM delightbridge_sync.tombstones t
        WHERE t.account_id = $27 AND t.gmail_message_id = u.gmail_message_id
          AND t.history_id >= u.history_id)
), written AS (
    INSERT INTO emails (id, thread_id, gmail_message_id, rfc_message_id, in_reply_to,
                        "references", from_email, from_name, to_email, to_header, cc_header,
                        body, direction, sent_at)
    SELECT u.id, u.thread_id, u.gmail_message_id, u.rfc_message_id, u.in_reply_to, u.refs,
           u.from_email, u.from_name, u.to_email, u.to_header, u.cc_header, u.body,
           u.direction::email_direction, u.sent_at
    FROM fresh AS u
    ON CONFLICT (gmail_message_id) DO UPDATE
    SET thread_id = EXCLUDED.thread_id, rfc_message_id = EXCLUDED.rfc_message_id,
        in_reply_to = EXCLUDED.in_reply_to, "references" = EXCLUDED."references",
        from_email = EXCLUDED.from_email, from_name = EXCLUDED.from_name,
        to_email = EXCLUDED.to_email, to_header = EXCLUDED.to_header,
        cc_header = EXCLUDED.cc_header, body = EXCLUDED.body, direction = EXCLUDED.direction,
        sent_at = EXCLUDED.sent_at
    WHERE emails.thread_id = EXCLUDED.thread_id
       OR emails.thread_id IN (SELECT id FROM email_threads WHERE account_id = $27)
    RETURNING emails.id, emails.gmail_message_id, xmax = 0 AS inserted
), meta AS (
    INSERT INTO delightbridge_sync.messages (
        email_id, subject, cc_email, bcc_email, reply_to, body_text, snippet, label_ids,
        attachments, history_id, size_estimate, content_hash, parse_problems, synced_run_id,
        updated_at)
    SELECT w.id, u.subject, u.cc_email, u.bcc_email, u.reply_to, u.body_text, u.snippet,
           ARRAY(SELECT jsonb_array_elements_text(u.label_ids)), u.attachments, u.history_id,
           u.size_estimate, u.content_hash,
           ARRAY(SELECT jsonb_array_elements_text(u.parse_problems)), $28::uuid, now()
    FROM written w JOIN u ON u.gmail_message_id = w.gmail_message_id
    ON CONFLICT (email_id) DO UPDATE
    SET subject = EXCLUDED.subject, cc_email = EXCLUDED.cc_email,
        bcc_email = EXCLUDED.bcc_email, reply_to = EXCLUDED.reply_to,
        body_text = EXCLUDED.body_text, snippet = EXCLUDED.snippet,
        label_ids = EXCLUDED.label_ids, attachments = EXCLUDED.attachments,
        history_id = EXCLUDED.history_id, size_estimate = EXCLUDED.size_estimate,
        content_hash = EXCLUDED.content_hash, parse_problems = EXCLUDED.parse_problems,
        -- What the running import wrote or saw stays seen by it: an incremental that
        -- rewrites the row must not make the import's reconciliation remove it.
        synced_run_id = CASE WHEN messages.synced_run_id IN (
                                  SELECT i.run_id FROM delightbridge_sync.imports i
                                  WHERE i.account_id = $27 AND i.status IN ('pending', 'running'))
                             THEN messages.synced_run_id
                             ELSE EXCLUDED.synced_run_id END,
        updated_at = now()
)
-- inserted: a new row, not an update (an inserted row version has no xmax).
SELECT id, gmail_message_id, inserted FROM written

-- Their metadata goes with them (the foreign key's cascade). While an import runs, each
-- removal is remembered ($3: the history id it was seen at), so that the import's older
-- copy does not bring the message back.
-- name: sync_emails_delete
WITH tomb AS (
    INSERT INTO delightbridge_sync.tombstones (account_id, gmail_message_id, history_id)
    SELECT $1, g, $3::numeric FROM unnest($2::text[]) AS g
    WHERE $3::numeric IS NOT NULL AND EXISTS (
        SELECT 1 FROM delightbridge_sync.imports i
        WHERE i.account_id = $1 AND i.status IN ('pending', 'running'))
    ON CONFLICT (account_id, gmail_message_id) DO UPDATE
    SET history_id = greatest(tombstones.history_id, EXCLUDED.history_id)
)
DELETE FROM emails AS e USING email_threads AS t
WHERE t.id = e.thread_id AND t.account_id = $1 AND e.gmail_message_id = ANY($2::text[])
RETURNING e.thread_id

-- What a full sync did not write is what the mailbox no longer has.
-- What an import did not write (or see), nor an incremental since it started ($3: the
-- history id it started at), is what the mailbox no longer has.
-- name: sync_emails_delete_unseen
DELETE FROM emails AS e USING email_threads AS t
WHERE t.id = e.thread_id AND t.account_id = $1
  AND NOT EXISTS (SELECT 1 FROM delightbridge_sync.messages m
                  WHERE m.email_id = e.id
                    AND (m.synced_run_id = $2 OR m.history_id > $3::numeric))
RETURNING e.thread_id

-- ---------------------------------------------------------------- verify

-- A message without metadata (written by the web app) has no labels and no hash: verify
-- reports it as differing, and a repair rewrites it.
-- name: verify_mirror
SELECT e.gmail_message_id, t.gmail_thread_id, coalesce(m.label_ids, '{}') AS label_ids,
       m.content_hash
FROM emails e
JOIN email_threads t ON t.id = e.thread_id
LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id
WHERE t.account_id = $1
