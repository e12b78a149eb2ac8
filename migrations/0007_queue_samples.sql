-- The console's history of queue depths: scheduler-web samples every queue of the topology
-- every few seconds (several web processes write the same slot once) and keeps a day.
-- Ready messages and consumers: what AMQP's passive declare tells (unacknowledged counts
-- need the management plugin, which the service does not use).
CREATE TABLE IF NOT EXISTS queue_samples (
    taken_at    timestamptz NOT NULL,
    queue       text NOT NULL,
    ready       bigint NOT NULL CHECK (ready >= 0),
    consumers   bigint NOT NULL CHECK (consumers >= 0),
    PRIMARY KEY (taken_at, queue)
);
