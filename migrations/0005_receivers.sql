-- Receivers (scheme://host:port) as the workers see them: written by each worker every
-- few seconds (the last writer wins), read by `scheduler-ctl receivers`. An operator's
-- command (open, close, reset) is written here and picked up by every worker.
CREATE TABLE IF NOT EXISTS receivers (
    receiver      text PRIMARY KEY,
    state         text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half-open')),
    concurrency   double precision NOT NULL DEFAULT 0,
    in_flight     integer NOT NULL DEFAULT 0,
    waiting       integer NOT NULL DEFAULT 0,
    success_rate  double precision,
    latency_ms    double precision,
    paused_until  timestamptz,
    held_open     boolean NOT NULL DEFAULT false,
    command       text CHECK (command IN ('open', 'close', 'reset')),
    command_at    timestamptz,
    changed_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
