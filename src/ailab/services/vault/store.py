"""The API-key vault: provider credentials encrypted at rest, validated, testable and rotatable.

Storage model
    One ``api_keys`` row per service (the provider's name). The secret is stored only encrypted, by the
    master keys of :mod:`~ailab.services.vault.keyring`. Non-secret settings (endpoint, deployment,
    base URL) are plain JSON in ``config``.

Lookups
    Providers call :meth:`Vault.get` per request. Decrypted credentials are cached in memory for
    ``CACHE_SECONDS``; a set, delete or rotate in this process clears the cache at once, and other
    processes (workers, replicas) see the change within ``CACHE_SECONDS``. A service without a stored
    key falls back to what its plugin's settings give (``AILAB_<PROVIDER>_API_KEY``, ...).

Providers
    The vault names no provider: which services take a key, the format it is validated against, and
    how a key is tried all come from the installed plugins (:class:`~ailab.providers.plugins.Plugins`),
    so a third-party plugin's keys are stored, validated and tested like the built-ins'.

Rotation
    ``rotate`` re-encrypts every row under the newest master key in one transaction. With
    ``AILAB_MASTER_KEY`` the user lists the new key first ("NEW,OLD"), rotates, then drops OLD. With the
    key file, rotate writes ``[new, old...]``, re-encrypts, then writes ``[new]``. A running server
    notices: a token its keys cannot open makes it re-read the key file once and retry, and every write
    re-reads the file first if it changed, under the same table lock that rotation holds, so nothing
    is ever encrypted under a retired key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

from ailab.config import ConfigError, Settings
from ailab.db.engine import Database
from ailab.db.repos import keys as keys_repo
from ailab.db.tables import ApiKey, utcnow
from ailab.errors import Conflict, NotFound
from ailab.expiring import MISSING, ExpiringCache
from ailab.providers.base import Credential
from ailab.providers.credentials import CredentialFormat, mask, validate
from ailab.providers.plugin import ProviderPlugin
from ailab.providers.plugins import Plugins
from ailab.services.masterkey import load_master_keys, master_key_path, write_key_file
from ailab.services.vault.keyring import KeyRing, UndecryptableKey, mismatch_message
from ailab.services.vault.probe import probe

CACHE_SECONDS = 5.0
CACHE_MAX_ENTRIES = 1_000  # services by name: a few in practice
log = logging.getLogger("ailab.vault")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key as lists show it: never the secret, only its last 4 characters."""

    service_name: str
    masked_key: str | None
    config: dict[str, Any]
    created_at: str | None
    updated_at: str | None
    last_tested_at: str | None
    last_test_result: str | None
    source: str  # "vault" or "environment"


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """The answer of a key test: ``valid``, ``invalid`` (rejected) or ``unreachable``."""

    service_name: str
    result: str
    detail: str
    tested_at: str


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What ``rotate`` did."""

    reencrypted: int
    source: str  # "AILAB_MASTER_KEY" or the key file's path
    new_key_created: bool
    old_keys: int  # master keys that may now be dropped (env) or were retired (file)

    def summary(self) -> str:
        """What was done and what to do next, in one line (the API's message and the CLI's output)."""
        done = f"re-encrypted {self.reencrypted} key(s)"
        if self.new_key_created:
            return f"{done} under a new master key; {self.old_keys} old key(s) retired"
        if self.old_keys:
            return (
                f"{done}; the {self.old_keys} older key(s) in AILAB_MASTER_KEY are no longer needed: "
                "drop them"
            )
        return (
            f"{done}; AILAB_MASTER_KEY lists one key: to change it, set AILAB_MASTER_KEY=NEW,OLD and "
            "rotate again"
        )


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class Vault:
    """Encrypted provider credentials; also the :class:`CredentialStore` the providers read."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        master_keys: list[str],
        plugins: Plugins | None = None,
        *,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._db = db
        self._settings = settings
        self.plugins = plugins if plugins is not None else Plugins({}, {})
        self._cache_seconds = cache_seconds
        # Cleared on every change: a read racing a write is not cached (ExpiringCache.clear).
        self._cache: ExpiringCache[str, Credential | None] = ExpiringCache(CACHE_MAX_ENTRIES)
        self.keys = KeyRing(settings, master_keys)

    # -- the CredentialStore protocol --------------------------------------------------------------

    async def get(self, service: str) -> Credential | None:
        """The credential of ``service``: the vault's, else the settings', else None (cached briefly)."""
        name = self.plugins.canonical(service) or service
        hit = self._cache.cached(name)
        if hit is not MISSING:
            return hit

        async def load() -> tuple[Credential | None, float]:
            return await self._load(name), self._cache_seconds

        return await self._cache.get(name, load)

    async def _load(self, service: str) -> Credential | None:
        if not self._keyed(service):
            return self.plugins.settings_credential(service)
        async with self._db.read() as session:
            row = await keys_repo.get_key(session, service)
        if row is None:
            return self.plugins.settings_credential(service)
        return await self._credential_of(row)

    def _keyed(self, name: str) -> bool:
        plugin = self.plugins.plugins.get(name)
        return plugin is not None and plugin.credential is not None

    async def _credential_of(self, row: ApiKey) -> Credential:
        # What the stored config leaves out (an endpoint, an API version) the provider takes from its
        # own settings, so the row holds exactly what was stored.
        secret = await self.keys.decrypt(row.service, row.ciphertext)
        return Credential(api_key=secret or None, config=dict(row.config))

    def _invalidate(self) -> None:
        self._cache.clear()

    # -- management --------------------------------------------------------------------------------

    def supported_services(self) -> list[str]:
        """The service names keys can be stored for: the installed plugins that take a credential."""
        return self.plugins.keyed()

    def formats(self) -> dict[str, CredentialFormat]:
        """The credential format of each supported service."""
        found = {name: self.plugins.get(name).credential for name in self.plugins.keyed()}
        return {name: form for name, form in found.items() if form is not None}

    def _plugin(self, service: str) -> tuple[ProviderPlugin, CredentialFormat]:
        """The plugin ``service`` names and its credential format; :class:`NotFound` otherwise."""
        plugin = self.plugins.get(service)
        if plugin.credential is None:
            keyed = ", ".join(self.plugins.keyed())
            raise NotFound(f"{plugin.name} takes no key; the services with keys: {keyed}")
        return plugin, plugin.credential

    async def set(self, service: str, api_key: str, config: Mapping[str, str] | None = None) -> KeyInfo:
        """Validate and store (or replace) the key of ``service``; 422 saying what was expected."""
        plugin, form = self._plugin(service)
        name = plugin.name
        key, clean_config = validate(name, form, api_key, config or {})
        async with self._db.write() as session:
            await keys_repo.lock_for_write(session)
            # Under the lock that rotation takes: pick up a key file a rotation just replaced.
            await asyncio.to_thread(self.keys.reload_key_file, only_if_changed=True)
            # Never mix master keys: if the stored keys are under another one, say so and store nothing.
            other = await keys_repo.first_key(session, excluding=name)
            if other is not None and not self.keys.opens(other.service, other.ciphertext):
                raise Conflict(
                    f"the stored key of {other.service} cannot be decrypted with the configured master key: "
                    "set AILAB_MASTER_KEY to the key the vault was written with before storing new keys"
                )
            row = await keys_repo.upsert_key(session, name, self.keys.encrypt(key), clean_config)
            info = self._info(row, key)
        self._invalidate()
        log.info("stored the API key of %s", name)
        return info

    async def delete(self, service: str) -> str:
        """Delete the stored key of ``service`` (404 when there is none)."""
        name = self._plugin(service)[0].name
        async with self._db.write() as session:
            deleted = await keys_repo.delete_key(session, name)
        self._invalidate()
        if not deleted:
            raise NotFound(f"no key is stored for {name}")
        log.info("deleted the API key of %s", name)
        return name

    async def list_keys(self) -> list[KeyInfo]:
        """Every configured service, masked: the vault's keys, then those only set in the environment."""
        async with self._db.read() as session:
            rows = list(await keys_repo.list_keys(session))
        infos = []
        for row in rows:
            try:
                secret: str | None = await self.keys.decrypt(row.service, row.ciphertext)
            except UndecryptableKey:
                secret = None  # listed without its last characters; serve refuses to start like this
            infos.append(self._info(row, secret))
        stored = {row.service for row in rows}
        for name in self.plugins.keyed():
            if name in stored:
                continue
            credential = self.plugins.settings_credential(name)
            if credential is not None and credential.api_key:
                masked = mask(credential.api_key)
                config = dict(credential.config)
                infos.append(KeyInfo(name, masked, config, None, None, None, None, source="environment"))
        return infos

    @staticmethod
    def _info(row: ApiKey, secret: str | None) -> KeyInfo:
        return KeyInfo(
            service_name=row.service,
            masked_key=mask(secret),
            config=dict(row.config),
            created_at=_iso(row.created_at),
            updated_at=_iso(row.updated_at),
            last_tested_at=_iso(row.last_tested_at),
            last_test_result=row.last_test_result,
            source="vault",
        )

    # -- testing a key -----------------------------------------------------------------------------

    async def test(self, service: str) -> TestOutcome:
        """Try the credential of ``service`` with a cheap authenticated call; never raises for its result.

        The stored key is read afresh (not from the cache). The outcome is remembered on the row.
        """
        plugin, _ = self._plugin(service)
        name = plugin.name
        async with self._db.read() as session:
            row = await keys_repo.get_key(session, name)
        credential = None
        try:
            credential = await self._credential_of(row) if row is not None else None
        except UndecryptableKey as exc:
            result, detail = "invalid", exc.message
        else:
            credential = credential or self.plugins.settings_credential(name)
            if credential is None:
                raise NotFound(f"no key is configured for {name}: store one first (POST /api-keys)")
            result, detail = await probe(self.plugins, plugin, credential, self._settings.data_dir)
        now = utcnow()
        if row is not None:
            async with self._db.write() as session:
                await keys_repo.record_test(session, name, row.ciphertext, result, now)
        log.info("tested the API key of %s: %s", name, result)
        return TestOutcome(name, result, detail, now.isoformat())

    # -- the master key: start-up check and rotation -----------------------------------------------

    async def verify_master_key(self) -> None:
        """Raise :class:`ConfigError` naming AILAB_MASTER_KEY when a stored key cannot be decrypted."""
        async with self._db.read() as session:
            rows = list(await keys_repo.list_keys(session))
        bad = []
        for row in rows:
            try:
                await self.keys.decrypt(row.service, row.ciphertext)
            except UndecryptableKey:
                bad.append(row.service)
        if bad:
            raise ConfigError(mismatch_message(self._settings, bad, len(rows)))

    async def rotate(self) -> RotationReport:
        """Re-encrypt every stored key under the newest master key, in one transaction.

        With the key file, first a new master key is generated and written in front of the old ones;
        after the re-encryption the file holds the new key only.
        """
        if not self.keys.uses_key_file:
            count = await self._reencrypt()
            return RotationReport(count, "AILAB_MASTER_KEY", False, self.keys.count - 1)
        path = master_key_path(self._settings)
        current = await asyncio.to_thread(load_master_keys, self._settings, create=False)
        self.keys.use(current)
        await self.verify_master_key()  # nothing is touched when a stored key is already unreadable
        new_key = Fernet.generate_key().decode()
        await asyncio.to_thread(write_key_file, path, [new_key, *current])
        self.keys.use([new_key, *current])
        count = await self._reencrypt()
        await asyncio.to_thread(write_key_file, path, [new_key])
        self.keys.use([new_key])
        self.keys.file_stamp = await asyncio.to_thread(self.keys.stamp)
        log.info("rotated the master key file: %d key(s) re-encrypted", count)
        return RotationReport(count, str(path), True, len(current))

    async def _reencrypt(self) -> int:
        async with self._db.write() as session:
            await keys_repo.lock_for_write(session)
            rows = list(await keys_repo.list_keys(session))
            for row in rows:
                rotated = self.keys.reencrypt(row.service, row.ciphertext)
                await keys_repo.set_ciphertext(session, row.service, rotated)
        self._invalidate()
        return len(rows)
