"""Test support: real servers for the suite (no mocks of Postgres, Redis or HTTP)."""
