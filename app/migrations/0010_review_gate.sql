-- The review gate (docs/missions.md, "Review gate"): a task may require review by
-- another agent and/or a person before it succeeds. One task_reviews row per cycle
-- (the work's run succeeded and was handed to review), one review_verdicts row per
-- verdict given in it (an agent's, then perhaps a person's).
ALTER TABLE tasks ADD COLUMN review_agent_id INTEGER REFERENCES agents (id);
ALTER TABLE tasks ADD COLUMN review_human INTEGER NOT NULL DEFAULT 0 CHECK (review_human IN (0, 1));
ALTER TABLE tasks ADD COLUMN review_max_cycles INTEGER NOT NULL DEFAULT 3
    CHECK (review_max_cycles BETWEEN 1 AND 10);
-- set on a review task: the work task it reviews
ALTER TABLE tasks ADD COLUMN reviews_task_id INTEGER REFERENCES tasks (id);

CREATE TABLE task_reviews (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    cycle INTEGER NOT NULL CHECK (cycle >= 1),
    -- the work's succeeded run under review
    work_conversation_id INTEGER NOT NULL REFERENCES conversations (id),
    -- bounded, gated diff of the workspace made by that run
    diff TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN
        ('with_agent', 'with_human', 'approved', 'changes_requested', 'closed')),
    review_task_id INTEGER REFERENCES tasks (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (task_id, cycle)
);
CREATE INDEX task_reviews_review_task ON task_reviews (review_task_id);
CREATE INDEX task_reviews_open ON task_reviews (state) WHERE state IN ('with_agent', 'with_human');

CREATE TABLE review_verdicts (
    id INTEGER PRIMARY KEY,
    review_id INTEGER NOT NULL REFERENCES task_reviews (id),
    task_id INTEGER NOT NULL REFERENCES tasks (id),
    cycle INTEGER NOT NULL,
    reviewer_kind TEXT NOT NULL CHECK (reviewer_kind IN ('agent', 'human')),
    reviewer TEXT NOT NULL,
    agent_id INTEGER REFERENCES agents (id),
    verdict TEXT NOT NULL CHECK (verdict IN
        ('approve', 'request_changes', 'unparseable', 'review_failed')),
    reasons TEXT NOT NULL DEFAULT '',
    conversation_id INTEGER REFERENCES conversations (id),
    created_at TEXT NOT NULL
);
CREATE INDEX review_verdicts_task ON review_verdicts (task_id, id);
