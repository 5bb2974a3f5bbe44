"""Marketo's REST API (`/rest/v1/...`, `/rest/asset/v1/...`), one module per API family."""
