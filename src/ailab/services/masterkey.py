"""The master key(s) of the vault, and keys derived from them.

``AILAB_MASTER_KEY`` holds one or more Fernet keys, comma-separated, newest first. When it is unset the
key lives in ``<data dir>/master.key`` (mode 0600, one key per line, newest first), created on first
start. The master key never enters the database. Other secrets (the access-token signing key) are
derived from the newest master key with HKDF, so a cluster of replicas shares one secret only.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ailab.config import ConfigError, Settings

MASTER_KEY_FILE = "master.key"


def master_key_path(settings: Settings) -> Path:
    """Where the master key file lives when ``AILAB_MASTER_KEY`` is unset."""
    return settings.data_dir / MASTER_KEY_FILE


def _validate(keys: list[str], source: str) -> list[str]:
    if not keys:
        raise ConfigError(f"{source} holds no key")
    for key in keys:
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise ConfigError(
                f"{source} must hold Fernet keys (32 url-safe base64 bytes), comma-separated; "
                "generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`"
            ) from None
    return keys


def write_key_file(path: Path, keys: list[str]) -> None:
    """Atomically write ``keys`` (newest first) to ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # atomic and fails if another process created it first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def load_master_keys(settings: Settings, *, create: bool = True) -> list[str]:
    """The configured master keys, newest first; creates the key file on first start."""
    if settings.master_key is not None:
        raw = settings.master_key.get_secret_value()
        return _validate([k.strip() for k in raw.split(",") if k.strip()], "AILAB_MASTER_KEY")
    path = master_key_path(settings)
    if not path.exists():
        if not create:
            raise ConfigError(f"no master key: set AILAB_MASTER_KEY or create {path}")
        _create_key_file(path)
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return _validate(lines, f"the master key file {path} (AILAB_MASTER_KEY is unset)")


def derive_key(master_key: str, purpose: str) -> bytes:
    """A 32-byte key for ``purpose``, derived from a master key with HKDF-SHA256."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(base64.urlsafe_b64decode(master_key.encode()))
