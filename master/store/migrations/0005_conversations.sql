-- Conversations: a user's questions grouped as the page shows them; a task belongs to at most one
-- (tasks from before this migration, and tasks asked through the REST API, belong to none).
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The first question, shortened (master/conversations.py: title_of).
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    -- The time of its latest question: the history lists by it, and retention deletes by it.
    updated_at REAL NOT NULL
);
CREATE INDEX conversations_by_user ON conversations (user_id, updated_at);
CREATE INDEX conversations_by_age ON conversations (updated_at);

-- Deleting a conversation deletes its tasks. NULL for tasks that belong to none.
ALTER TABLE tasks ADD COLUMN conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE;
CREATE INDEX tasks_by_conversation ON tasks (conversation_id, created_at) WHERE conversation_id IS NOT NULL;
CREATE INDEX tasks_by_user ON tasks (user_id, created_at);
