"""The hub's own database: typed models, sessions and transactions."""
