"""Fixtures of the monitoring tests: the fake OpenAI-compatible server (a real HTTP server)."""

from tests.fakes.fixtures import fake_openai_compat  # noqa: F401
