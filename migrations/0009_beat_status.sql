-- Each beat's last round, for the console's overview: written by the beat (host and process)
-- after a round, at most every few seconds; rows of beats gone for a day are dropped.
CREATE TABLE IF NOT EXISTS beat_status (
    beat           text PRIMARY KEY,
    last_round_at  timestamptz NOT NULL,
    round_ms       double precision NOT NULL,
    lag_ms         double precision NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
