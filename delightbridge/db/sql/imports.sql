-- Imports (syncengine/imports.py): the job, what it has done, what it may skip.
-- Named, parameterised statements ($1…), loaded by db/queries.py.

-- A new import, unless one is pending or running already (nothing is returned: the
-- caller reads its run id). One that failed is taken up again as it was (same run, so
-- what it stored counts), a full one if either asks for it.
-- name: import_request
INSERT INTO delightbridge_sync.imports (account_id, run_id, kind, status)
SELECT id, $2, $3, 'pending' FROM gmail_accounts WHERE id = $1
ON CONFLICT (account_id) DO UPDATE
SET run_id = CASE WHEN imports.status = 'failed' THEN imports.run_id ELSE EXCLUDED.run_id END,
    kind = CASE WHEN imports.status = 'failed' AND imports.kind = 'full' THEN 'full'
                ELSE EXCLUDED.kind END,
    status = 'pending',
    start_history_id = CASE WHEN imports.status = 'failed' THEN imports.start_history_id END,
    total = CASE WHEN imports.status = 'failed' THEN imports.total END,
    done = CASE WHEN imports.status = 'failed' THEN imports.done ELSE 0 END,
    error = NULL, requested_at = now(), updated_at = now(), finished_at = NULL,
    started_at = CASE WHEN imports.status = 'failed' THEN imports.started_at END
WHERE imports.status NOT IN ('pending', 'running')
RETURNING run_id

-- A repair asked for while an import runs (or waits to resume from an earlier start):
-- it follows that import. Returns the running import's run id, or nothing.
-- name: import_request_again
UPDATE delightbridge_sync.imports
SET again = 'repair', updated_at = now()
WHERE account_id = $1
  AND (status = 'running' OR (status = 'pending' AND start_history_id IS NOT NULL))
RETURNING run_id

-- name: import_get
SELECT account_id, run_id, kind, status, start_history_id::text AS start_history_id, total,
       done, requested_at, started_at
FROM delightbridge_sync.imports WHERE account_id = $1

-- name: import_begin
UPDATE delightbridge_sync.imports
SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now(),
    not_before = NULL, error = NULL,
    start_history_id = coalesce(start_history_id, $2::numeric), total = coalesce(total, $3)
WHERE account_id = $1 AND run_id = $4
RETURNING start_history_id::text AS start_history_id, total

-- name: import_progress
UPDATE delightbridge_sync.imports SET done = $3, updated_at = now()
WHERE account_id = $1 AND run_id = $2

-- The import is done: succeeded, unless a repair was asked for meanwhile, which then
-- becomes the pending import ($3: its run id), from a start of its own. $4: messages
-- it went through, its done and total once succeeded (Gmail's count at the start
-- included spam, trash and drafts).
-- name: import_complete
UPDATE delightbridge_sync.imports
SET status = CASE WHEN again IS NULL THEN 'succeeded' ELSE 'pending' END,
    kind = coalesce(again, kind),
    run_id = CASE WHEN again IS NULL THEN run_id ELSE $3 END,
    start_history_id = CASE WHEN again IS NULL THEN start_history_id END,
    total = CASE WHEN again IS NULL THEN $4::integer END,
    done = CASE WHEN again IS NULL THEN $4::integer ELSE 0 END,
    started_at = CASE WHEN again IS NULL THEN started_at END,
    requested_at = CASE WHEN again IS NULL THEN requested_at ELSE now() END,
    finished_at = CASE WHEN again IS NULL THEN now() END,
    error = NULL, not_before = NULL, again = NULL, updated_at = now()
WHERE account_id = $1 AND run_id = $2
RETURNING status

-- name: import_finish
UPDATE delightbridge_sync.imports
SET status = $3, error = $4, finished_at = now(), updated_at = now()
WHERE account_id = $1 AND run_id = $2

-- name: import_clear_tombstones
DELETE FROM delightbridge_sync.tombstones WHERE account_id = $1

-- Imports to run or resume: pending, or running but held by nobody (checked by the
-- caller with the import lock).
-- name: import_waiting
SELECT account_id FROM delightbridge_sync.imports
WHERE status IN ('pending', 'running') AND (not_before IS NULL OR not_before <= now())
ORDER BY requested_at

-- Stopped by the daily budget: resumes when the next quota day begins ($3).
-- name: import_defer
UPDATE delightbridge_sync.imports
SET status = 'pending', not_before = $3, error = $4, updated_at = now()
WHERE account_id = $1 AND run_id = $2

-- Of these listed messages, what the mirror holds: whether this import wrote (or saw)
-- them, an incremental wrote them after the import began, and their labels.
-- name: import_known
SELECT g.id AS gmail_message_id, e.id AS email_id,
       coalesce(m.synced_run_id = $2, false) AS by_import,
       coalesce(m.history_id > $3::numeric, false) AS newer,
       m.label_ids
FROM unnest($4::text[]) AS g(id)
LEFT JOIN (emails e JOIN email_threads t ON t.id = e.thread_id AND t.account_id = $1)
       ON e.gmail_message_id = g.id
LEFT JOIN delightbridge_sync.messages m ON m.email_id = e.id

-- A repair found these as the mailbox has them: mark them seen by the import, so that
-- its reconciliation keeps them.
-- name: import_mark_seen
UPDATE delightbridge_sync.messages SET synced_run_id = $2
WHERE email_id = ANY($1::text[])
