"""System and GPU samples, per-endpoint and per-model figures, their history, health, the LLM benchmark."""
