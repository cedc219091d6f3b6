"""Decile feature service."""
