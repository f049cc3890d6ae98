"""Sixth hand-written held-out set for the free-text de-identifier (issue 5)."""
