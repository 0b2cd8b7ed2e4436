"""Fixtures of the service tests: the fake provider servers."""

from tests.fakes.fixtures import closed_port_url, fake_openai  # noqa: F401 - fixtures
