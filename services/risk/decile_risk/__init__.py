"""Decile risk service."""
