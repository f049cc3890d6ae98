"""CDM revisions."""
