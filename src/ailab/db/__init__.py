"""Storage: engine, tables, repositories and migrations."""
