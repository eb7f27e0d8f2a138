-- The Gmail quota every process of a deployment shares: the Cloud project's per-minute
-- budget (1,200,000 units) and, under the 2026 model, its daily threshold (80,000,000
-- units per Pacific day). Each process leases units here before spending them
-- (syncengine/budget.py): a lease is granted only while the leases of the last window
-- plus it stay within the budget, so any number of consumer replicas never exceed it
-- together. Leases older than a few windows are pruned.
CREATE TABLE delightbridge_sync.quota_leases (
    id          bigserial PRIMARY KEY,
    scope       text NOT NULL,
    units       bigint NOT NULL CHECK (units > 0),
    granted_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX quota_leases_scope_time_idx ON delightbridge_sync.quota_leases (scope, granted_at);

CREATE TABLE delightbridge_sync.quota_days (
    day    date PRIMARY KEY,  -- in America/Los_Angeles, Google's quota day
    units  bigint NOT NULL DEFAULT 0
);

-- An import stopped by the daily budget waits for the next quota day.
ALTER TABLE delightbridge_sync.imports ADD COLUMN not_before timestamptz;
