"""Migration 0014 (docs/notifications.md, "Delivery"): the notifications of a
database from before delivery per channel keep every row and field; the channels
that had one become ``sent`` deliveries, a waiting one waits for each configured
channel that lacks it with the attempts and next attempt it had."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.core.migrations import bundled_migrations, migrate

COLUMNS = (
    "id, category, severity, title, body, muted, read_at, webhook_state, webhook_attempts,"
    " webhook_next_at, created_at, link"
)


def test_old_notifications_migrate_to_deliveries_per_channel_without_loss(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db"
    base = bundled_migrations()
    # the migrations before the one that brings deliveries per channel
    before_it = [m.name for m in base].index("notification_deliveries")
    migrate(db, tmp_path / "b", base[:before_it])
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO notify_channels (name, configured, service, updated_at) VALUES (?, ?, ?, 't')",
        [("phone", 1, "ntfy"), ("desk", 1, "JSON"), ("old", 0, "JSON")],
    )
    rows = [
        # id, state, attempts, next_at, delivered_to
        (1, "none", 0, None, ""),
        (2, "delivered", 1, None, "phone,desk"),
        (3, "pending", 3, "2026-01-01T00:10:00.000000Z", "desk"),
        (4, "failed", 8, None, ""),
        (5, "failed", 8, None, "phone"),
        (6, "pending", 0, None, ""),
    ]
    conn.executemany(
        "INSERT INTO notifications (id, category, severity, title, body, muted, read_at,"
        " webhook_state, webhook_attempts, webhook_next_at, created_at, link, delivered_to)"
        " VALUES (?, 'security', 'critical', ?, 'b', 0, NULL, ?, ?, ?,"
        " '2026-01-01T00:00:00.000000Z', '/ui/x', ?)",
        [(i, f"n{i}", state, att, nxt, to) for i, state, att, nxt, to in rows],
    )
    conn.commit()
    before = conn.execute(f"SELECT {COLUMNS} FROM notifications ORDER BY id").fetchall()
    conn.close()

    report = migrate(db, tmp_path / "b", base)
    assert report.applied == [m.version for m in base[before_it:]] and report.backup is not None

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA foreign_keys=ON")
    after = conn.execute(f"SELECT {COLUMNS} FROM notifications ORDER BY id").fetchall()
    # every row and field kept; a failed one that some channel had is now 'partial'
    assert [r[:7] + r[8:] for r in after] == [r[:7] + r[8:] for r in before]
    assert [r[7] for r in after] == [
        "none",
        "delivered",
        "pending",
        "failed",
        "partial",
        "pending",
    ]
    deliveries = conn.execute(
        "SELECT notification_id, channel, state, attempts, next_at FROM notification_deliveries"
        " ORDER BY notification_id, channel"
    ).fetchall()
    assert deliveries == [
        (2, "desk", "sent", 1, None),
        (2, "phone", "sent", 1, None),
        (3, "desk", "sent", 1, None),
        (3, "phone", "pending", 3, "2026-01-01T00:10:00.000000Z"),
        (5, "phone", "sent", 1, None),
        (6, "desk", "pending", 0, "2026-01-01T00:00:00.000000Z"),
        (6, "phone", "pending", 0, "2026-01-01T00:00:00.000000Z"),
    ]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(notifications)")]
    assert "delivered_to" not in columns
    indexes = {r[1] for r in conn.execute("PRAGMA index_list(notifications)")}
    assert {"notifications_unread", "notifications_webhook"} <= indexes
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # the retention job deletes notifications: their deliveries go with them
    conn.execute("DELETE FROM notifications WHERE id = 3")
    assert conn.execute(
        "SELECT count(*) FROM notification_deliveries WHERE notification_id = 3"
    ).fetchone() == (0,)
