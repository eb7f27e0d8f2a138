-- Imports: a full sync as a resumable job that never holds up new mail.
--
-- A service's import reads every message (open inbox first, then newest to oldest)
-- while incremental syncs of the same mailbox go on: it does not hold the service's
-- sync lock, only an import lock of its own. Its progress is what it has stored (each
-- message written by it carries its run id in delightbridge_sync.messages), so a killed
-- import resumes where it was, fetching again only what it had not stored. One row per
-- service: its current or last import.
CREATE TABLE delightbridge_sync.imports (
    account_id         text PRIMARY KEY REFERENCES public.gmail_accounts (id) ON DELETE CASCADE,
    run_id             uuid NOT NULL,
    -- full: fetch every message; repair (after Gmail's history expired): fetch only what
    -- the mirror lacks or holds with other labels.
    kind               text NOT NULL CHECK (kind IN ('full', 'repair')),
    status             text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    -- The mailbox's historyId when the import started: it mirrors the mailbox as of then;
    -- every later change is an incremental sync's.
    start_history_id   numeric(20, 0),
    total              integer,  -- Gmail's messagesTotal at the start (the progress's 100 %)
    done               integer NOT NULL DEFAULT 0,
    error              text,
    requested_at       timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);

-- Messages an incremental sync removed while an import ran: the import, holding an older
-- copy fetched before the removal, must not bring them back. Cleared when it finishes.
CREATE TABLE delightbridge_sync.tombstones (
    account_id        text NOT NULL REFERENCES public.gmail_accounts (id) ON DELETE CASCADE,
    gmail_message_id  text NOT NULL,
    history_id        numeric(20, 0) NOT NULL,
    PRIMARY KEY (account_id, gmail_message_id)
);
