"""Singer target writing into Marketo."""
