-- Quotas per tenant. A user's own values (NULL: the default of their kind, from the
-- QUOTA_* or ADMIN_QUOTA_* settings); the creates of the current minute, counted under the
-- user's row lock so that several web processes count together; each schedule's delivery
-- rate (deliveries a second when enabled), whose sum over a user's enabled schedules is
-- bounded by their deliveries_per_second. The user's count of schedules and that sum are
-- kept on the user's row by a trigger, so a check costs one row, not a count of them all.
CREATE TABLE user_quotas (
    user_id                bigint PRIMARY KEY REFERENCES auth_user (id) ON DELETE CASCADE,
    schedules              integer,
    hooks                  integer,
    creates_per_minute     integer,
    deliveries_per_second  double precision,
    min_interval_us        bigint,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE auth_user
    ADD COLUMN IF NOT EXISTS creates_window_start timestamptz,
    ADD COLUMN IF NOT EXISTS creates_in_window integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS schedules_owned integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS delivery_rate_enabled double precision NOT NULL DEFAULT 0;

ALTER TABLE schedules ADD COLUMN IF NOT EXISTS delivery_rate double precision NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS schedules_owner ON schedules (created_by);

-- The rates of the schedules stored before: a crontab fires at most once a minute; an
-- interval "<n> <unit>" n times a unit. What does not read counts as nothing (beat
-- quarantines it).
UPDATE schedules SET delivery_rate = CASE
    WHEN nullif(btrim(cron_definition), '') IS NOT NULL THEN 1.0 / 60
    WHEN interval_definition ~* '^\s*[0-9]{1,15}\s+(day|hour|minute|second|microsecond)s?\s*$' THEN
        1.0 / greatest(1e-6, (substring(interval_definition FROM '[0-9]+'))::double precision
            * CASE lower(substring(interval_definition FROM '(?i)(day|hour|minute|second|microsecond)'))
                WHEN 'day' THEN 86400 WHEN 'hour' THEN 3600 WHEN 'minute' THEN 60 WHEN 'second' THEN 1 ELSE 1e-6 END)
    ELSE 0 END;

UPDATE auth_user u SET schedules_owned = t.n, delivery_rate_enabled = t.rate
FROM (SELECT created_by, count(*) AS n, coalesce(sum(delivery_rate) FILTER (WHERE enabled), 0) AS rate
      FROM schedules WHERE created_by IS NOT NULL GROUP BY created_by) AS t
WHERE u.id = t.created_by;

-- Each change to a user's count or enabled rate is appended here by a trigger and folded
-- into their row under the quota check's lock. Updating the user's row itself from the
-- trigger would make a statement that touches many of one user's schedules (a bulk insert,
-- beat disabling a burst whose frequency ran out) rewrite that one row once per schedule,
-- each time walking the versions before it: quadratic. Appending is linear.
CREATE TABLE schedule_owner_deltas (
    user_id    bigint NOT NULL,
    schedules  integer NOT NULL,
    rate       double precision NOT NULL
);
CREATE INDEX schedule_owner_deltas_user ON schedule_owner_deltas (user_id);

CREATE OR REPLACE FUNCTION scheduler_owner_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.created_by IS NOT NULL THEN
        INSERT INTO schedule_owner_deltas VALUES (OLD.created_by, -1, CASE WHEN OLD.enabled THEN -OLD.delivery_rate ELSE 0 END);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.created_by IS NOT NULL THEN
        INSERT INTO schedule_owner_deltas VALUES (NEW.created_by, 1, CASE WHEN NEW.enabled THEN NEW.delivery_rate ELSE 0 END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER schedules_owner_counts AFTER INSERT OR DELETE ON schedules
    FOR EACH ROW EXECUTE FUNCTION scheduler_owner_counts();
-- Beat's fires set enabled on every row they touch: only a real change calls the function.
CREATE TRIGGER schedules_owner_counts_change AFTER UPDATE OF enabled, delivery_rate, created_by ON schedules
    FOR EACH ROW WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.delivery_rate IS DISTINCT FROM NEW.delivery_rate
                       OR OLD.created_by IS DISTINCT FROM NEW.created_by)
    EXECUTE FUNCTION scheduler_owner_counts();
