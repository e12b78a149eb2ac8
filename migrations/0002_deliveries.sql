-- Delivery records: one row per occurrence (and per webhook call), written before the
-- job is published (an outbox), so a crash between the two loses nothing: rows left
-- unpublished are published again once their lease (publish_after) runs out.

CREATE TABLE deliveries (
    id             uuid PRIMARY KEY,
    schedule_id    uuid REFERENCES schedules (id) ON DELETE SET NULL,
    kind           text NOT NULL DEFAULT 'schedule' CHECK (kind IN ('schedule', 'webhook')),
    scheduled_for  timestamptz NOT NULL,
    routing_key    text NOT NULL,
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'delivered', 'retrying', 'dead', 'cancelled')),
    attempts       integer NOT NULL DEFAULT 0,
    last_status    integer,
    last_error     text,
    latency_ms     double precision,
    -- Webhook calls only: where to, what, and with which token.
    target         text,
    body           json,
    auth_token     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    publish_after  timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_schedule ON deliveries (schedule_id, scheduled_for DESC);
CREATE INDEX deliveries_unpublished ON deliveries (publish_after) WHERE published_at IS NULL;
CREATE INDEX deliveries_dead ON deliveries (finished_at DESC) WHERE state = 'dead';
CREATE INDEX deliveries_pending ON deliveries (schedule_id) WHERE state IN ('queued', 'retrying');

-- Beat sleeps until the next due time or until a schedule changes: tell it. Beat's own
-- updates set scheduler.beat so they do not wake it again.
CREATE FUNCTION scheduler_notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('scheduler.beat', true), '') <> 'on' THEN
        PERFORM pg_notify('scheduler_schedules', '');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER schedules_changed AFTER INSERT OR UPDATE OR DELETE ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION scheduler_notify_schedules();

-- A webhook call queued by the API (an outbox row) wakes beat too.
CREATE TRIGGER deliveries_added AFTER INSERT ON deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION scheduler_notify_schedules();
