-- API tokens for HTTP clients. Only the BLAKE3 hash of a token's secret is
-- kept; a token works while its user is not revoked and it has not expired.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    handle      TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX tokens_by_handle ON tokens (handle);
