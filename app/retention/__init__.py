"""Retention (F22): old events, notifications and transcripts are removed."""
