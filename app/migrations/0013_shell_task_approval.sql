-- A shell needs a person (docs/security-model.md, "A shell needs a person"): a task
-- whose run would get a shell and that no person decided waits for approval.
-- approval: '' (none needed: no shell, or created by an admin in a browser
-- session), 'pending' (held: no run is queued), 'approved' (a person approved it
-- through app/approvals/gate.py), 'refused' (cancelled while waiting).
ALTER TABLE tasks ADD COLUMN approval TEXT NOT NULL DEFAULT ''
    CHECK (approval IN ('', 'pending', 'approved', 'refused'));
ALTER TABLE tasks ADD COLUMN approved_by TEXT;
CREATE INDEX tasks_approval ON tasks (approval) WHERE approval = 'pending';

-- held one-owner approvals may now be about a task too (same table, same rules)
CREATE TABLE held_approvals_new (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mission', 'rule', 'task')),
    target_id INTEGER NOT NULL,
    target_version INTEGER NOT NULL,
    approver TEXT NOT NULL,
    approver_user_id INTEGER NOT NULL REFERENCES users (id),
    comment TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    effective_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'held'
        CHECK (state IN ('held', 'effective', 'vetoed', 'void')),
    closed_by TEXT,
    closed_at TEXT,
    close_reason TEXT
);
INSERT INTO held_approvals_new SELECT id, kind, target_id, target_version, approver,
    approver_user_id, comment, created_at, effective_at, state, closed_by, closed_at,
    close_reason FROM held_approvals;
DROP TABLE held_approvals;
ALTER TABLE held_approvals_new RENAME TO held_approvals;
CREATE UNIQUE INDEX held_approvals_open ON held_approvals (kind, target_id)
    WHERE state = 'held';
CREATE INDEX held_approvals_due ON held_approvals (state, effective_at);
