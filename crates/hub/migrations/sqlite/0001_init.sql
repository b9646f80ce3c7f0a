-- Handles and the hash of the secret that owns each one.
CREATE TABLE users (
    handle      TEXT PRIMARY KEY NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The store's listing. Bytes live in the blob store under their BLAKE3 hash;
-- a row is written only after its blob is durable.
CREATE TABLE files (
    name     TEXT PRIMARY KEY NOT NULL,
    size     INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    owner    TEXT NOT NULL REFERENCES users (handle),
    modified INTEGER NOT NULL
);

CREATE INDEX files_by_hash ON files (hash);
