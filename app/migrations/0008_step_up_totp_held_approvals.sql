-- Step-up, the optional second factor (TOTP) and held one-owner approvals
-- (docs/security-model.md, "One-owner approval").

-- A session's last step-up (password, plus TOTP when enrolled): sensitive
-- actions ask for one younger than MC_STEP_UP_SECONDS.
ALTER TABLE sessions ADD COLUMN step_up_at TEXT;

-- One TOTP credential per user. The secret is sealed (AES-GCM under a key
-- derived from the server key, app/auth/totp.py): never stored, logged or
-- exported in the clear. confirmed_at NULL: enrolment begun, not yet active.
-- last_step: the time step of the last accepted code (a replay is refused).
CREATE TABLE totp_credentials (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    confirmed_at TEXT,
    last_step INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- Recovery codes: argon2 hashes like passwords, each usable once.
CREATE TABLE totp_recovery_codes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX totp_recovery_codes_user ON totp_recovery_codes (user_id);

-- Where a person acts on a notification (a UI path such as the approval view of
-- a mission waiting for approval): the list links to it, one tap away.
ALTER TABLE notifications ADD COLUMN link TEXT;

-- A one-owner self-approval, held for the cooling-off period: any admin may
-- veto it until effective_at; after that the worker's pass (or the next
-- approval check) makes it effective. One open hold per mission or rule.
CREATE TABLE held_approvals (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mission', 'rule')),
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
CREATE UNIQUE INDEX held_approvals_open ON held_approvals (kind, target_id)
    WHERE state = 'held';
CREATE INDEX held_approvals_due ON held_approvals (state, effective_at);
