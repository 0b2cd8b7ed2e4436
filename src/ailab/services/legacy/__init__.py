"""Bringing in the conversations of AI-Lab v2 (its JSON files and its SQLite file)."""
