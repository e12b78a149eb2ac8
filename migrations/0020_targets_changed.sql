-- A worker reads the targets of the jobs it holds ahead of their due time (endpoint, payload,
-- token, the delivery's state) and POSTs each at its instant without reading it again. A
-- change of a schedule by anything but beat (an edit, a pause and the cancellation of its
-- queued occurrences with it, a delete) tells the workers which schedule, so that they read
-- its held jobs' targets again at their instant. Beat's own updates (the next run, a one-off
-- done) change nothing a target holds.
CREATE FUNCTION scheduler_notify_targets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scheduler_targets', OLD.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER schedules_targets_changed AFTER UPDATE OR DELETE ON schedules
    FOR EACH ROW WHEN (coalesce(current_setting('scheduler.beat', true), '') <> 'on')
    EXECUTE FUNCTION scheduler_notify_targets();
