-- WebDAV: collections made empty (MKCOL; a folder is otherwise there
-- because files are in it) and dead properties (PROPPATCH), by name ('' is
-- the root).
CREATE TABLE collections (
    name       TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE dead_props (
    name      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    local     TEXT NOT NULL,
    prefix    TEXT,
    xml       BLOB,
    PRIMARY KEY (name, namespace, local)
);
