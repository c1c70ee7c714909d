"""Benchmarks of rescue against the commands it replaces (one command: benchmarks/run.py)."""
