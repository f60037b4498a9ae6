"""Who may approve a mission or a shell rule, and held one-owner approvals."""
