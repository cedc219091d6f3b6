"""Decile model-watcher service."""
