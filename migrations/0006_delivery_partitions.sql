-- Delivery records are partitioned by week, so history is kept for a while and then
-- dropped a whole week at a time (no row-by-row deletes).
--
-- The partition key is the id itself: a delivery id starts with the 48-bit Unix time in
-- milliseconds of its occurrence (UUIDv7's layout; see DeliveryID in the Swift sources),
-- so the range [floor(monday), floor(monday + 7)) of ids is one UTC week (Monday to
-- Sunday), and every lookup by id touches one partition. Weeks rather than days: queries
-- that cannot be pruned (beat's look for unpublished records, every round) are planned
-- over every partition, and 30 days of daily partitions made that planning take ~5 ms.
-- Rows that fit no week's partition (ids from before this migration, which are random,
-- and records kept past their week) live in `deliveries_default`.
--
-- Partitions are added ahead of time and dropped after `DELIVERY_RETENTION_DAYS` by
-- scheduler_add_delivery_partitions / scheduler_drop_delivery_partitions below, which beat
-- calls every hour (and `scheduler-ctl maintain-history` on demand). Before a week is
-- dropped, its records still wanted (queued, retrying, or dead and so still in the
-- dead-letter queue) move to `deliveries_default`.

ALTER TABLE deliveries RENAME TO deliveries_before_partitioning;
ALTER INDEX deliveries_pkey RENAME TO deliveries_before_partitioning_pkey;
DROP INDEX deliveries_schedule, deliveries_unpublished, deliveries_dead, deliveries_pending;
DROP TRIGGER deliveries_added ON deliveries_before_partitioning;
-- Its constraints go now, so the new table's get the same names.
ALTER TABLE deliveries_before_partitioning
    DROP CONSTRAINT deliveries_kind_check, DROP CONSTRAINT deliveries_state_check, DROP CONSTRAINT deliveries_schedule_id_fkey;

CREATE TABLE deliveries (
    id             uuid NOT NULL,
    schedule_id    uuid REFERENCES schedules (id) ON DELETE SET NULL,
    kind           text NOT NULL DEFAULT 'schedule' CHECK (kind IN ('schedule', 'webhook')),
    scheduled_for  timestamptz NOT NULL,
    routing_key    text NOT NULL,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'delivered', 'retrying', 'dead', 'cancelled', 'purged')),
    attempts       integer NOT NULL DEFAULT 0,
    last_status    integer,
    last_error     text,
    latency_ms     double precision,
    target         text,
    body           json,
    auth_token     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    publish_after  timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX deliveries_schedule ON deliveries (schedule_id, scheduled_for DESC);
CREATE INDEX deliveries_unpublished ON deliveries (publish_after) WHERE published_at IS NULL;
CREATE INDEX deliveries_dead ON deliveries (finished_at DESC) WHERE state = 'dead';
CREATE INDEX deliveries_pending ON deliveries (schedule_id) WHERE state IN ('queued', 'retrying');
CREATE TRIGGER deliveries_added AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION scheduler_notify_schedules();

CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;

-- The smallest delivery id of a UTC day: its first 48 bits are the day's start in Unix ms.
CREATE FUNCTION scheduler_delivery_id_floor(day date) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (lpad(to_hex((extract(epoch FROM day::timestamp) * 1000)::bigint), 12, '0') || repeat('0', 20))::uuid
$$;

-- Adds the partitions of the weeks (named after their Monday) from first_day's to
-- last_day's (UTC) that do not exist yet; returns how many it added. Rows of such a week
-- already in deliveries_default move into its new partition. Attaching takes a SHARE UPDATE EXCLUSIVE lock on deliveries (reads and writes
-- go on) and an ACCESS EXCLUSIVE lock on deliveries_default for as long as it is scanned.
CREATE FUNCTION scheduler_add_delivery_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day - (extract(isodow FROM first_day)::integer - 1);  -- its Monday
    name text;
    low uuid;
    high uuid;
    added integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7262002);
    WHILE day <= last_day LOOP
        name := 'deliveries_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            low := scheduler_delivery_id_floor(day);
            high := scheduler_delivery_id_floor(day + 7);
            LOCK TABLE deliveries IN SHARE UPDATE EXCLUSIVE MODE;
            LOCK TABLE deliveries_default IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('CREATE TABLE %I (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
            EXECUTE format('INSERT INTO %I SELECT * FROM deliveries_default WHERE id >= %L AND id < %L', name, low, high);
            DELETE FROM deliveries_default WHERE id >= low AND id < high;
            EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, low, high);
            added := added + 1;
        END IF;
        day := day + 7;
    END LOOP;
    RETURN added;
END
$$;

-- Drops the week partitions older than retention_days (their whole week before today - N,
-- UTC: records are kept N to N + 7 days), first moving their records still wanted
-- (queued, retrying, dead) to deliveries_default; then deletes from deliveries_default
-- the finished records that old. Returns how many partitions it dropped. retention_days 0
-- keeps everything. Detaching takes an ACCESS EXCLUSIVE lock on deliveries for a moment.
CREATE FUNCTION scheduler_drop_delivery_partitions(retention_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    cutoff date;
    dropped integer := 0;
BEGIN
    IF retention_days IS NULL OR retention_days <= 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7262002);
    cutoff := (now() AT TIME ZONE 'UTC')::date - retention_days;
    FOR part IN
        SELECT c.relname AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'deliveries'::regclass AND c.relname ~ '^deliveries_[0-9]{8}$'
          AND to_date(substr(c.relname, 12), 'YYYYMMDD') + 7 <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE deliveries DETACH PARTITION %I', part.name);
        EXECUTE format(
            'INSERT INTO deliveries SELECT * FROM %I WHERE state IN (''queued'', ''retrying'', ''dead'')', part.name);
        EXECUTE format('DROP TABLE %I', part.name);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM deliveries_default
    WHERE state IN ('delivered', 'cancelled', 'purged')
      AND coalesce(finished_at, updated_at) < now() - make_interval(days => retention_days);
    RETURN dropped;
END
$$;

SELECT scheduler_add_delivery_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);

INSERT INTO deliveries (
    id, schedule_id, kind, scheduled_for, routing_key, state, attempts, last_status, last_error, latency_ms,
    target, body, auth_token, created_at, publish_after, published_at, finished_at, updated_at)
SELECT
    id, schedule_id, kind, scheduled_for, routing_key, state, attempts, last_status, last_error, latency_ms,
    target, body, auth_token, created_at, publish_after, published_at, finished_at, updated_at
FROM deliveries_before_partitioning;
DROP TABLE deliveries_before_partitioning;
