"""Pure numerical building blocks: local sufficient statistics and Newton steps."""
