"""Decile ingest service."""
