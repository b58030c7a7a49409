-- One row that /readyz rewrites (at most every few seconds) to prove the store takes writes.
CREATE TABLE store_health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);
