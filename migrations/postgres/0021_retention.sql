-- Retention: every sweep of expired data leaves a line, what it removed per kind and store
-- (counts only: no customer, no content).
CREATE TABLE retention_sweeps (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    -- the days kept per kind when the sweep ran (null: kept for ever)
    policy        jsonb NOT NULL,
    customers     integer NOT NULL DEFAULT 0,
    counts        jsonb NOT NULL DEFAULT '{}',
    error         text
);
CREATE INDEX retention_sweeps_recent_idx ON retention_sweeps (started_at DESC);
