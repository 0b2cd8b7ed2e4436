"""The vault's master keys: encrypt with the newest, open with any, follow a key file rotation replaces.

The master keys come from ``AILAB_MASTER_KEY`` (comma-separated, newest first) or ``<data dir>/master.key``
and never enter the database. A stored secret is ``"v1:" + Fernet token``; the version prefix lets the
format change later.
"""

from __future__ import annotations

import asyncio
import logging
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ailab.config import ConfigError, Settings
from ailab.errors import AILabError
from ailab.services.masterkey import load_master_keys, master_key_path

CIPHERTEXT_VERSION = "v1"
log = logging.getLogger("ailab.vault")


class UndecryptableKey(AILabError):
    """A stored key that the configured master keys cannot open."""

    status = 500
    code = "master_key_mismatch"


class KeyRing:
    """The master keys in use, as one :class:`~cryptography.fernet.MultiFernet`."""

    def __init__(self, settings: Settings, master_keys: list[str]) -> None:
        self._settings = settings
        self.use(master_keys)
        self.file_stamp = self.stamp()

    @property
    def uses_key_file(self) -> bool:
        """Whether the master keys come from ``<data dir>/master.key`` (AILAB_MASTER_KEY unset)."""
        return self._settings.master_key is None

    def stamp(self) -> tuple[int, int, int] | None:
        """What identifies the key file's current version (None without one)."""
        if not self.uses_key_file:
            return None
        try:
            st = os.stat(master_key_path(self._settings))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def use(self, keys: list[str]) -> None:
        """Encrypt with ``keys[0]`` from now on, and open with any of them."""
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self.count = len(keys)

    def reload_key_file(self, *, only_if_changed: bool) -> bool:
        """Re-read the key file (blocking; call in a thread); whether the keys were replaced."""
        if not self.uses_key_file:
            return False
        stamp = self.stamp()
        if only_if_changed and stamp == self.file_stamp:
            return False
        try:
            keys = load_master_keys(self._settings, create=False)
        except ConfigError as exc:
            log.error("re-reading the master key file failed: %s", exc)
            return False
        self.use(keys)
        self.file_stamp = stamp
        log.info("master key file re-read: %d key(s)", len(keys))
        return True

    def encrypt(self, plaintext: str) -> str:
        """``plaintext`` as stored: the version prefix and a token under the newest key."""
        return f"{CIPHERTEXT_VERSION}:{self._fernet.encrypt(plaintext.encode()).decode()}"

    def open(self, service: str, ciphertext: str) -> str:
        """The plaintext; InvalidToken when no key opens it."""
        version, sep, token = ciphertext.partition(":")
        if not sep or version != CIPHERTEXT_VERSION:
            raise UndecryptableKey(f"the stored key of {service} has an unknown format")
        return self._fernet.decrypt(token.encode()).decode()

    def opens(self, service: str, ciphertext: str) -> bool:
        """Whether the keys in use open ``ciphertext``."""
        try:
            self.open(service, ciphertext)
        except (InvalidToken, UndecryptableKey):
            return False
        return True

    async def decrypt(self, service: str, ciphertext: str) -> str:
        """The plaintext, re-reading a key file that a rotation may have replaced once before failing."""
        try:
            return self.open(service, ciphertext)
        except InvalidToken:
            pass
        if await asyncio.to_thread(self.reload_key_file, only_if_changed=False):
            try:
                return self.open(service, ciphertext)
            except InvalidToken:
                pass
        raise UndecryptableKey(
            f"the stored key of {service} cannot be decrypted with the configured master key "
            "(AILAB_MASTER_KEY, or the master key file when it is unset)"
        )

    def reencrypt(self, service: str, ciphertext: str) -> str:
        """``ciphertext`` re-encrypted under the newest key; UndecryptableKey when no key opens it."""
        version, _, token = ciphertext.partition(":")
        if version != CIPHERTEXT_VERSION:
            raise UndecryptableKey(f"the stored key of {service} has an unknown format")
        try:
            return f"{CIPHERTEXT_VERSION}:{self._fernet.rotate(token.encode()).decode()}"
        except InvalidToken:
            raise UndecryptableKey(
                f"the stored key of {service} cannot be decrypted with the configured master "
                "keys: nothing was changed; list the old key in AILAB_MASTER_KEY too"
            ) from None


def mismatch_message(settings: Settings, bad: list[str], total: int) -> str:
    """Why the server refuses to start: which keys are unreadable and which setting to fix."""
    where = (
        "AILAB_MASTER_KEY"
        if settings.master_key is not None
        else f"AILAB_MASTER_KEY (unset, so the key file {master_key_path(settings)} is used)"
    )
    return (
        f"{len(bad)} of {total} stored API keys ({', '.join(bad)}) cannot be decrypted with the configured "
        f"master key from {where}. Set AILAB_MASTER_KEY to the key they were stored with (several "
        "comma-separated, newest first, during a rotation), or remove them with `ai-lab keys delete SERVICE`."
    )
