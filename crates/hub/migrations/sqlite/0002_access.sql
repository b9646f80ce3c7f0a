-- Access control: login keys, roles, quotas, revocation, invites, folder
-- owners, and hub-wide settings.

-- A handle proves itself with `public_key`; `secret_hash` is the bearer
-- secret of earlier versions, emptied once the handle moves to a key.
ALTER TABLE users ADD COLUMN public_key BLOB;
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE users ADD COLUMN quota INTEGER;
ALTER TABLE users ADD COLUMN last_seen INTEGER;
ALTER TABLE users ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
-- Last upload or share: handles on open hubs that never do either expire.
-- Handles from before this migration count as active: they were kept so far.
ALTER TABLE users ADD COLUMN active_at INTEGER;
UPDATE users SET active_at = created_at;

CREATE TABLE invites (
    id          TEXT PRIMARY KEY NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    quota       INTEGER,
    uses_left   INTEGER NOT NULL,
    expires_at  INTEGER,
    created_by  TEXT,
    created_at  INTEGER NOT NULL
);

-- A top-level folder belongs to whoever first stored a file in it; others
-- add to it only when allowed.
CREATE TABLE folders (
    name  TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL
);

CREATE TABLE folder_writers (
    folder TEXT NOT NULL,
    handle TEXT NOT NULL,
    PRIMARY KEY (folder, handle)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- A data dir from before access control had open admission: it keeps it
-- unless the operator says otherwise.
INSERT INTO settings (key, value)
SELECT 'created_open', '1' WHERE EXISTS (SELECT 1 FROM users);

-- Existing folders go to whoever stored their oldest file.
INSERT INTO folders (name, owner)
SELECT substr(name, 1, instr(name, '/') - 1), owner FROM files
WHERE instr(name, '/') > 0
ORDER BY modified DESC
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner;

CREATE INDEX files_by_owner ON files (owner);

-- Copies the hub kept of files it relayed between peers: within a hub-wide
-- budget, oldest out first, counted against no one's quota. The publisher
-- adds and removes rows as it writes and removes entries.
CREATE TABLE relayed (
    name    TEXT PRIMARY KEY NOT NULL,
    size    INTEGER NOT NULL,
    kept_at INTEGER NOT NULL
);
CREATE INDEX relayed_by_age ON relayed (kept_at);
