"""Chat sessions: their messages and agent steps, listing, export and import."""
