"""Tests of marketo-common."""
