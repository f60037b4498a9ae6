"""Escalations domain."""
