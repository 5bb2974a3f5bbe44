"""Tests of tap-marketo-members."""
