"""Webhooks: endpoints, Standard Webhooks signing, SSRF-safe delivery with retries."""
