"""Which server process executes a run, and whether it still lives.

A process names itself ``host/pid/start`` (its start time in ms tells a reused pid apart). A process on
the same host is checked directly, so a restart marks the runs of the process it replaces failed at
once; a process elsewhere is believed alive while the lease it renews on its runs has not ended.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import psutil

MAX_ID = 160


def _start_ms(pid: int) -> int:
    return int(psutil.Process(pid).create_time() * 1000)


def this_instance() -> str:
    """The name of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_ms(pid)}"[-MAX_ID:]


def is_alive(instance_id: str, lease_until: dt.datetime, now: dt.datetime, me: str) -> bool:
    """Whether the process ``instance_id`` may still execute a run whose lease ends at ``lease_until``."""
    if instance_id == me:
        return True
    parts = instance_id.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not (parts[1] + parts[2]).isdigit():
        return lease_until > now  # another host: only its lease tells
    try:
        process = psutil.Process(int(parts[1]))
        return process.status() != psutil.STATUS_ZOMBIE and _start_ms(process.pid) == int(parts[2])
    except psutil.AccessDenied:
        return True  # it exists, and is not ours to look at
    except psutil.Error:  # NoSuchProcess, ZombieProcess
        return False
