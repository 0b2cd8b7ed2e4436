"""Test support: real PostgreSQL, real server processes, free ports."""
