-- Hooks hear of receivers' circuits (`receiver.opened`, `receiver.closed`), and admins set
-- a receiver's limits by hand.
--
-- Each worker has a circuit of its own for a receiver: `announced` is the change last told
-- to the hooks, so that the first worker whose circuit opens tells, and the others find it
-- told.
--
-- `limit_concurrency` (requests in flight) and `limit_rate` (requests a second, with a
-- burst of `limit_burst`) hold for the receiver across every worker, shared among the
-- workers alive; NULL: not set (the adaptive limit, no rate).
ALTER TABLE receivers
    ADD COLUMN announced text CHECK (announced IN ('opened', 'closed')),
    ADD COLUMN limit_concurrency integer CHECK (limit_concurrency BETWEEN 1 AND 10000),
    ADD COLUMN limit_rate double precision CHECK (limit_rate > 0 AND limit_rate <= 100000),
    ADD COLUMN limit_burst integer CHECK (limit_burst BETWEEN 1 AND 100000),
    ADD COLUMN limits_at timestamptz;

-- The workers alive: each writes its row at every receivers' sync (a few seconds); a share
-- of a receiver's limits is counted among those seen lately. Rows of workers gone for an
-- hour are deleted.
CREATE TABLE workers (
    id       text PRIMARY KEY,
    seen_at  timestamptz NOT NULL DEFAULT now()
);
