"""Edge state-database revisions."""
