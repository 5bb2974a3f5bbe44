"""Singer tap for Marketo program members."""
