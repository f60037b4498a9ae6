"""Schedules: recurring tasks from a cron expression (docs/schedules.md)."""
