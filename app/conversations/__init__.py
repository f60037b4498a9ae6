"""Conversations: one agent run of a task (the worker writes them; read side here)."""
