-- Deleting a schedule leaves its delivery records as they are. The foreign key's
-- ON DELETE SET NULL rewrote every record of the schedule inside the DELETE (9 s for a
-- million records), so a schedule with a long history ran into the statement timeout and
-- could not be deleted. The records keep the deleted schedule's id; every reader already
-- joins to schedules (a record without its schedule has no owner, and its job is not POSTed).
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_schedule_id_fkey;
