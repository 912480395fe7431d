"""Providers apply changes to the outside world (DNS, servers, secrets, key material)."""
