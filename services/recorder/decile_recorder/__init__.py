"""Decile recorder service."""
