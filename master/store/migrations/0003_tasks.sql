-- Every task from the moment it is accepted, and its answer or error: the queue survives a restart
-- of the master, and a user gets what they missed after any reconnect.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'assigned', 'answered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The per-task secret a worker must echo with its result (checked in constant time).
    token TEXT NOT NULL,
    worker_id TEXT,
    answer TEXT,
    answer_model TEXT,
    error_code TEXT,
    error_message TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX tasks_open ON tasks (state) WHERE state IN ('queued', 'assigned');
CREATE INDEX tasks_finished_by_user ON tasks (user_id, finished_at) WHERE finished_at IS NOT NULL;
