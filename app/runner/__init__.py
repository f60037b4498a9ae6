"""Agent runner building blocks: command profiles, child environment, confined processes,
output parsing and circuit breakers. Database-independent; the worker loop composes them."""
