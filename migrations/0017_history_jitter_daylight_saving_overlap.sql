-- Each schedule's history: every create, change, pause, resume, run-now and delete, who did
-- it (NULL: the service) and which fields changed from what to what (secrets only as
-- changed). `owner_id` keeps the schedule's owner, so its history outlives it: an owner can
-- still read who deleted it. Each schedule keeps its last 1,000 entries; those of deleted
-- schedules go after DELIVERY_RETENTION_DAYS.
CREATE TABLE schedule_history (
    id          bigserial PRIMARY KEY,
    schedule_id uuid NOT NULL,
    owner_id    bigint,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    action      text NOT NULL,
    changes     json NOT NULL DEFAULT '{}'
);
CREATE INDEX schedule_history_schedule ON schedule_history (schedule_id, id DESC);
CREATE INDEX schedule_history_deleted ON schedule_history (at) WHERE action = 'deleted';
-- Jitter: each occurrence is sent at an offset in [due, due + jitter seconds], the same for
-- every attempt of it (drawn from its delivery id).
ALTER TABLE schedules ADD COLUMN jitter integer NOT NULL DEFAULT 0;
-- Daylight-saving choices of a crontab: a local time the clock skips is skipped (the
-- original's rule) or shifted to the moment the clock jumps; one it shows twice runs at the
-- first showing (the original's rule), the second, or both.
ALTER TABLE schedules
    ADD COLUMN dst_gap text NOT NULL DEFAULT 'skip' CHECK (dst_gap IN ('skip', 'shift')),
    ADD COLUMN dst_overlap text NOT NULL DEFAULT 'first' CHECK (dst_overlap IN ('first', 'second', 'both'));
-- Overlap: an occurrence due while the schedule's previous one is still being delivered is
-- sent beside it (allow, the original's behaviour), recorded as skipped, or waits behind it
-- (buffer_one: state buffered, released by beat once the previous one is done).
ALTER TABLE schedules ADD COLUMN overlap text NOT NULL DEFAULT 'allow' CHECK (overlap IN ('allow', 'skip', 'buffer_one'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'delivered', 'retrying', 'dead', 'cancelled', 'purged', 'missed', 'skipped', 'buffered'));
CREATE INDEX deliveries_buffered ON deliveries (schedule_id) WHERE state = 'buffered';
