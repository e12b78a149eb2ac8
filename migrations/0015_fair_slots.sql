-- Fair shares between tenants at a shared instant. Beat claims the schedules due at one
-- instant in the order of fair_slot, a number drawn when a schedule is written, uniformly
-- below the owner's count of schedules then: a tenant with 50,000 schedules spreads them
-- over [0, 50000), one with 10 over [0, 10), so the small tenant's are claimed, published
-- and POSTed among the first of the instant instead of at random places behind the large
-- tenant's burst. Rows written without one (by hand) draw below 1.
ALTER TABLE schedules ADD COLUMN IF NOT EXISTS fair_slot double precision NOT NULL DEFAULT 0;
UPDATE schedules s SET fair_slot = random() * t.n
FROM (SELECT created_by, count(*) AS n FROM schedules GROUP BY created_by) AS t
WHERE s.created_by IS NOT DISTINCT FROM t.created_by;
ALTER TABLE schedules ALTER COLUMN fair_slot SET DEFAULT random();
CREATE INDEX IF NOT EXISTS schedules_due_fair ON schedules (next_send_at, fair_slot) WHERE enabled AND next_send_at IS NOT NULL;
DROP INDEX IF EXISTS schedules_due;
