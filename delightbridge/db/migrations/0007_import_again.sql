-- A repair asked for while an import runs: Gmail's history expired meanwhile, so the
-- running import, which has already stored part of the mailbox as it was then, cannot
-- cover the changes lost from history. It is followed by this kind of import (the
-- engine starts it as soon as the running one finishes).
ALTER TABLE delightbridge_sync.imports
    ADD COLUMN again text CHECK (again IN ('full', 'repair'));
