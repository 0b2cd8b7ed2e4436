"""Running ``ai-lab`` commands as real subprocesses for the vault tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLI = str(Path(sys.executable).with_name("ai-lab"))
TIMEOUT_S = 120


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """The test process's environment without any AILAB_ setting, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    full.update(env)
    full["COLUMNS"] = "200"  # rich wraps long lines otherwise
    return full


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    """Run ``ai-lab ARGS`` to completion (blocking: only while no fake server must answer)."""
    done = subprocess.run(
        [CLI, *args],
        env=clean_env(env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def acli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    """Run ``ai-lab ARGS`` without blocking the event loop (fake servers keep answering)."""
    process = await asyncio.create_subprocess_exec(
        CLI,
        *args,
        env=clean_env(env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate((stdin or "").encode()), TIMEOUT_S)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
