-- Every message row remembers the sync run that last wrote it. A full sync writes
-- every message the mailbox has, so afterwards the account's rows written by any
-- other run are exactly what the mailbox no longer has: the reconciliation deletes
-- them without holding the whole mailbox's id list in memory.
ALTER TABLE emails ADD COLUMN IF NOT EXISTS synced_run_id uuid;
