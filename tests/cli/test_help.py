"""``ai-lab --help`` (and each command's) answers without loading the server: no services, database,
HTTP client or model library is imported until a command runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("ailab.services.container", "ailab.db.engine", "sqlalchemy", "uvicorn", "aiohttp", "llama_cpp")
PROBE = f"""
import sys
from ailab.cli import app
for args in (["--help"], ["keys", "--help"], ["bench", "--help"], ["import", "legacy", "--help"]):
    try:
        app(args)
    except SystemExit as stop:
        assert stop.code == 0, (args, stop.code)
print("loaded:", ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


@pytest.mark.slow  # a fresh interpreter, so that nothing is imported already
def test_help_loads_nothing_heavy() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "serve" in result.stdout  # the help was printed
    assert result.stdout.splitlines()[-1] == "loaded: "
