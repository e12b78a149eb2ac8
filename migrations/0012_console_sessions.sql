-- The console's sessions: a random id per sign-in, stored as its SHA-256 only, expiring,
-- ended by signing out, and by the user's token being revoked or rotated (the session
-- keeps the token generation it was made under).
CREATE TABLE console_sessions (
    id_hash           text PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    token_generation  integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id, created_at);
