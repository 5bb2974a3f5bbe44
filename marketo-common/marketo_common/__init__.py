"""Shared Marketo plumbing: auth, HTTP, envelope, errors, retry and rate limits."""
