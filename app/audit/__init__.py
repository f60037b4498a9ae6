"""HTTP view of the audit log."""
