-- Follow-up turns (docs/capability.md, "Follow-up turns"): a run remembers the
-- agent CLI's session id, and a task may continue the session of an earlier run
-- of the same agent (the reply to a finished run).
ALTER TABLE conversations ADD COLUMN session_id TEXT;
ALTER TABLE tasks ADD COLUMN follows_conversation_id INTEGER REFERENCES conversations (id);
