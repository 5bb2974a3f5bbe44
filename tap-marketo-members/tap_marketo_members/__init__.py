"""Singer tap for Marketo program members."""

__version__ = "0.1.0"
