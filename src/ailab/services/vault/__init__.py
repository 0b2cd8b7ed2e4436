"""The API-key vault: provider credentials encrypted at rest, validated, testable and rotatable."""
