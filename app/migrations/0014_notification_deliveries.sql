-- Delivery per channel (docs/notifications.md, "Delivery"): each channel has its
-- own state, attempts, next attempt and last error for a notification, so a
-- channel that is down neither holds back, re-sends nor fails what another has.
-- notifications.webhook_state becomes the summary of its channels: 'partial' is
-- new (some channels have it, the others were given up); delivered_to (the
-- channels that had it) becomes 'sent' rows.
ALTER TABLE notifications RENAME TO notifications_old;

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    category TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    title TEXT NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    muted INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
    read_at TEXT,
    -- none (not sent off the Pi), pending (a channel still waits), delivered
    -- (every channel has it), partial (some have it, the others were given up),
    -- failed (no channel has it)
    webhook_state TEXT NOT NULL DEFAULT 'none' CHECK (webhook_state IN
        ('none', 'pending', 'delivered', 'partial', 'failed')),
    -- the most attempts of any one channel (each channel's are in notification_deliveries)
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    -- the earliest next attempt of a channel that waits
    webhook_next_at TEXT,
    created_at TEXT NOT NULL,
    link TEXT
);
INSERT INTO notifications (id, category, severity, title, body, muted, read_at,
    webhook_state, webhook_attempts, webhook_next_at, created_at, link)
    SELECT id, category, severity, title, body, muted, read_at,
        CASE WHEN webhook_state = 'failed' AND delivered_to != '' THEN 'partial'
            ELSE webhook_state END,
        webhook_attempts, webhook_next_at, created_at, link
    FROM notifications_old;

-- One row per notification and channel it is sent to. state: pending (next_at
-- says when), sent (once; never sent again), failed (given up, or the channel
-- left the notifier's file). last_error is a short reason, never a URL.
CREATE TABLE notification_deliveries (
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT,
    sent_at TEXT,
    last_error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (notification_id, channel)
) WITHOUT ROWID;

-- the channels that had a notification: one attempt known (the old rows counted
-- rounds, not channels; the notification keeps its webhook_attempts), time unknown
WITH RECURSIVE split (id, name, rest, at) AS (
    SELECT id, '', delivered_to || ',', created_at FROM notifications_old
        WHERE delivered_to != ''
    UNION ALL
    SELECT id, substr(rest, 1, instr(rest, ',') - 1), substr(rest, instr(rest, ',') + 1), at
        FROM split WHERE rest != ''
)
INSERT OR IGNORE INTO notification_deliveries
    (notification_id, channel, state, attempts, updated_at)
    SELECT id, name, 'sent', 1, at FROM split WHERE name != '';

-- a waiting notification still waits for every configured channel that lacks it,
-- with the attempts and next attempt it had
INSERT OR IGNORE INTO notification_deliveries
    (notification_id, channel, state, attempts, next_at, updated_at)
    SELECT n.id, c.name, 'pending', n.webhook_attempts, coalesce(n.webhook_next_at, n.created_at),
        n.created_at
    FROM notifications_old n JOIN notify_channels c ON c.configured = 1
    WHERE n.webhook_state = 'pending';

DROP TABLE notifications_old;
CREATE INDEX notifications_unread ON notifications (read_at, id);
CREATE INDEX notifications_webhook ON notifications (webhook_state, webhook_next_at);
CREATE INDEX notification_deliveries_due ON notification_deliveries (channel, next_at)
    WHERE state = 'pending';
