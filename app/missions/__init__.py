"""Missions: structured, bounded proposals that a human approves (F17)."""
