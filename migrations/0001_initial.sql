-- Users, groups and tokens (compatible with Django's auth_user and auth_group), schedules
-- and webhooks. Tokens are stored only as SHA-256 hashes.

CREATE TABLE auth_group (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE
);

CREATE TABLE auth_user (
    id                bigserial PRIMARY KEY,
    username          text NOT NULL UNIQUE,
    email             text NOT NULL,
    is_admin          boolean NOT NULL DEFAULT false,
    token_generation  integer NOT NULL DEFAULT 1,
    token_hash        text UNIQUE,
    date_joined       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX auth_user_email_lower ON auth_user (lower(email));

CREATE TABLE auth_user_groups (
    user_id   bigint NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    group_id  integer NOT NULL REFERENCES auth_group (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE schedules (
    id                   uuid PRIMARY KEY,
    frequency            integer CHECK (frequency IS NULL OR frequency > 0),
    triggered            integer NOT NULL DEFAULT 0,
    cron_definition      text,
    interval_definition  text,
    timezone             text NOT NULL DEFAULT 'UTC',
    endpoint             text NOT NULL,
    -- json, not jsonb: the payload reaches the receiver with its keys in the order given.
    payload              json,
    auth_token           text,
    next_send_at         timestamptz,
    enabled              boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           bigint REFERENCES auth_user (id) ON DELETE SET NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           bigint REFERENCES auth_user (id) ON DELETE SET NULL,
    CHECK (cron_definition IS NULL OR interval_definition IS NULL)
);
-- Beat's query: only enabled schedules with a next run, in due order. Its cost grows
-- with the number of due schedules, not stored ones.
CREATE INDEX schedules_due ON schedules (next_send_at) WHERE enabled AND next_send_at IS NOT NULL;
-- Lists are newest first.
CREATE INDEX schedules_created ON schedules (created_at DESC, id DESC);
CREATE INDEX schedules_endpoint ON schedules (endpoint);

CREATE TABLE webhooks (
    id       bigserial PRIMARY KEY,
    created  timestamptz NOT NULL DEFAULT now(),
    updated  timestamptz NOT NULL DEFAULT now(),
    user_id  bigint NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    event    text NOT NULL,
    target   text NOT NULL
);
CREATE INDEX webhooks_user ON webhooks (user_id, created DESC);
CREATE INDEX webhooks_event ON webhooks (event);
