-- A hook call belongs to the hook's owner, not to the schedule it tells of: an admin's
-- hook that fails for a tenant's new schedule is the admin's dead letter, and the tenant
-- neither sees its URL nor re-drives or purges it. Records made before this have no owner
-- here and are seen by admins only.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS owner_id bigint;
