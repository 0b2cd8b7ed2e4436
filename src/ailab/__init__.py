"""AI-Lab: a self-hosted AI workbench."""

__version__ = "3.0.0"
