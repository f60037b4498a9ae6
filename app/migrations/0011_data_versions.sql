-- Memory entries and project documents are versioned like an identity: every
-- addition or removal writes the whole set, as the agent's prompt frames it, as
-- a new version (who, when, why), so two versions can be compared with a diff
-- (docs/security-model.md, "Memory and documents").
CREATE TABLE data_versions (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL CHECK (subject IN ('agent_memory', 'project_documents')),
    subject_id INTEGER NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    text TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (subject, subject_id, version)
);
