"""Alerts for people: email digests of the events that matter."""
