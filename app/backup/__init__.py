"""Online backups with integrity check, rotation and a tested restore (F18)."""
