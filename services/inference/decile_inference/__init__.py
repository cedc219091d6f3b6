"""Decile inference service."""
