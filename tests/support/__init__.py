"""Test helpers shared across the suite (one package, imported as ``tests.support``)."""
