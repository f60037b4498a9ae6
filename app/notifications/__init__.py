"""Notifications domain."""
