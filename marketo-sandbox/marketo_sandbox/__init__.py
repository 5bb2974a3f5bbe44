"""A local Marketo backed by SQLite."""
