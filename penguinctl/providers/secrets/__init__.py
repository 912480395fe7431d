"""Secrets backends: the only place secret values live."""
