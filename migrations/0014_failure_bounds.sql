-- Failures that cannot pile up: a tenant's dead letters are counted through this index
-- (the dead records of each of their schedules) when a new one arrives, so the bound
-- DEAD_LETTERS_PER_TENANT costs a look at that tenant's dead letters only.
CREATE INDEX IF NOT EXISTS deliveries_dead_schedule ON deliveries (schedule_id) WHERE state = 'dead';
-- Receivers are pruned when unseen for a while (RECEIVER_RETENTION_DAYS).
CREATE INDEX IF NOT EXISTS receivers_updated ON receivers (updated_at);
