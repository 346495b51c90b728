"""Test helpers that boot real (tiny) guests: see labkit.guest."""
