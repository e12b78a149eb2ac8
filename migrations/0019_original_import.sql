-- Moving from the original Seed Scheduler (`scheduler-ctl import-original`).
--
-- A user keeps the original's token: only its SHA-256 is stored, beside the token this
-- service derives (either authenticates; a revoke or a rotate ends both). The original's
-- name and active flag are kept; an inactive user does not authenticate, as in Django.
ALTER TABLE auth_user
    ADD COLUMN first_name text NOT NULL DEFAULT '',
    ADD COLUMN last_name text NOT NULL DEFAULT '',
    ADD COLUMN is_active boolean NOT NULL DEFAULT true,
    ADD COLUMN original_token_hash text UNIQUE;

-- What each import took from the original, by the original's kind and id: the row here it
-- became, and a fingerprint of the original's row, so that a second import skips what did
-- not change, updates what did, and never makes a row twice. `done` marks a failure whose
-- dead letter was published.
CREATE TABLE original_imports (
    kind         text NOT NULL CHECK (kind IN ('user', 'token', 'group', 'membership', 'schedule', 'hook', 'failure')),
    original_id  text NOT NULL,
    local_id     text,
    fingerprint  text NOT NULL,
    refused      text,
    done         boolean NOT NULL DEFAULT false,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, original_id)
);
