"""The edge data pipeline: source systems in, one de-identified CDM database out.

See docs/edge-pipeline.md for the stages and the guarantees (counts add up,
re-runs and interruptions are safe, no direct identifier reaches the CDM).
"""
