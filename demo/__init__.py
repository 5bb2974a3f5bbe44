"""The demo scripts/demo runs: sample input files and the helper that prints results."""
