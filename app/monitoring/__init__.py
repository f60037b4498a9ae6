"""Periodic host checks that become notifications (layer 8, F20)."""
