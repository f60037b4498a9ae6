"""Policies domain."""
