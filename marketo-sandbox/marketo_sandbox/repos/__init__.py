"""Repositories, one per Marketo object, over one SQLite connection manager (`Database`)."""
