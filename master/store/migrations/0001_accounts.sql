-- Users, their server-side sessions and their daily question counts.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at REAL NOT NULL,
    password_changed_at REAL NOT NULL
);

-- A session is stored by the SHA-256 of its token: the cookie holds the token, the store never does.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE daily_usage (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    questions INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
);
