"""Trigger rules (F8): a typed schema, a fixed allow-list of actions, a bounded engine."""
