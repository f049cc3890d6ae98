"""Synthetic lung-cancer-like site tables for the demo; no real patient's data."""
