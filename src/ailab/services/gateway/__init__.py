"""The OpenAI-compatible API: requests checked, passed through or translated, and pipelines as models."""
