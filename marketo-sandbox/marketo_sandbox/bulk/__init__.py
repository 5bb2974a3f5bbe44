"""Marketo's Bulk APIs: program member extract, lead import, program member import."""
