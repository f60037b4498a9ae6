-- Notifications that leave the Pi (docs/notifications.md): the notifier process
-- (missionctl notify run) reads the channels from a root-owned file and records
-- here only what the UI may show: each channel's name and its delivery state,
-- never its URL (it holds the secret).
CREATE TABLE notify_channels (
    name TEXT PRIMARY KEY,
    -- 1 while the channel is in the notifier's file; 0 once it was removed
    configured INTEGER NOT NULL DEFAULT 1,
    -- the apprise service kind (e.g. "ntfy", "telegram", "json"), no secret
    service TEXT NOT NULL DEFAULT '',
    breaker_state TEXT NOT NULL DEFAULT 'closed',
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    breaker_opened_at TEXT,
    last_delivered_at TEXT,
    last_failed_at TEXT,
    -- a short reason safe to show (never a URL)
    last_error TEXT,
    updated_at TEXT NOT NULL
);

-- The channels a notification has reached: a retry sends only to the others.
ALTER TABLE notifications ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '';

-- "Send test" from the UI: the API enqueues, the notifier sends and records the
-- outcome (state: pending, delivered, failed).
CREATE TABLE notify_tests (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    outcome TEXT,
    done_at TEXT
);
CREATE INDEX notify_tests_pending ON notify_tests (state, id);

-- The notifier's heartbeat: health tells a stopped notifier from a quiet one.
CREATE TABLE notifier_heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    channels INTEGER NOT NULL
);
