-- How late each delivery's first POST left: from its due time to the moment the worker
-- handed the request to libcurl, in milliseconds (null for records from before, and for
-- deliveries never POSTed). The console shows its p50 and p99.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS lateness_ms double precision;
