"""The confirm service."""
