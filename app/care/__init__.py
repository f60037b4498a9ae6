"""Appliance care: the clock, the disk guard, the host checks and ``missionctl
monitor`` (layer 8, F20), the host readings, the sandbox findings and the
repairs list."""
