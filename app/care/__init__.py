"""Appliance care: the clock, the disk guard and the repairs list."""
