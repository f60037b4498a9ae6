"""Agents: configuration, identity (system prompt) versions, memory, quotas."""
