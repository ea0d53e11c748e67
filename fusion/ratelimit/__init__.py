"""Shared per-store rate limiting: a token bucket in Redis that every worker process uses."""
