"""Marketo's Data Ingestion API (persons, companies, custom objects, program members)."""
