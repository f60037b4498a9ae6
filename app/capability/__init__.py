"""What an agent run may do: one effective capability, decided in one place.

See :mod:`app.capability.model` and docs/capability.md.
"""
