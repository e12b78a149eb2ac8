-- Dead letters an operator purged (scheduler-ctl dlq purge) are kept as records, marked purged.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('queued', 'delivered', 'retrying', 'dead', 'cancelled', 'purged'));
