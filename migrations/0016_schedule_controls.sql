-- Schedule controls: a note with a pause, and who paused it and when; the window a schedule
-- runs in (start_at, end_at); a catch-up window after downtime, past which an occurrence is
-- recorded as missed instead of sent; and each delivery's origin.
ALTER TABLE schedules
    ADD COLUMN paused_note text,
    ADD COLUMN paused_by bigint,
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN start_at timestamptz,
    ADD COLUMN end_at timestamptz,
    ADD COLUMN catchup_window integer;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'delivered', 'retrying', 'dead', 'cancelled', 'purged', 'missed'));
-- NULL: an occurrence beat claimed; 'manual': sent at once on request (POST .../trigger/).
ALTER TABLE deliveries ADD COLUMN origin text;
