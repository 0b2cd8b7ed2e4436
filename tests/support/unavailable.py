"""What a test does when a service it needs (PostgreSQL, Redis) cannot be reached.

On a developer's machine it is skipped with the reason. In CI (``CI=true``), which provides both
services, it fails: a skip there would hide a broken service behind a green run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the current test with ``reason``, or fail it under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the service must be there)", pytrace=False)
    pytest.skip(reason)
