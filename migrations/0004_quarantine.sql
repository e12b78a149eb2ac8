-- Beat disables a schedule whose next run it cannot compute (a definition edited by hand,
-- a time out of range) and says why here; the API shows it as `disabled_reason`. Enabling
-- the schedule again, or changing its definition, clears it.
ALTER TABLE schedules ADD COLUMN disabled_reason text;
