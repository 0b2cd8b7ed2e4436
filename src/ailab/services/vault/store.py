"""The API-key vault: provider credentials encrypted at rest, validated, testable and rotatable.

Storage model
    One ``api_keys`` row per service (the provider's name). The secret is stored only as
    ``"v1:" + Fernet token``; the version prefix lets the format change later. Non-secret settings
    (endpoint, deployment, base URL) are plain JSON in ``config``. The master keys come from
    ``AILAB_MASTER_KEY`` (comma-separated, newest first) or ``<data dir>/master.key`` and never enter the
    database: a :class:`~cryptography.fernet.MultiFernet` encrypts with the newest and decrypts with any.

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
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.exc import SQLAlchemyError

from ailab.config import ConfigError, Settings
from ailab.db.engine import Database
from ailab.db.repos import keys as keys_repo
from ailab.db.tables import ApiKey, utcnow
from ailab.errors import (
    AILabError,
    Conflict,
    NotFound,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.logs import redact
from ailab.providers.base import Credential, Provider
from ailab.providers.credentials import CredentialFormat, mask, validate
from ailab.providers.plugin import ProviderContext, ProviderPlugin
from ailab.providers.plugins import Plugins
from ailab.services.masterkey import load_master_keys, master_key_path, write_key_file

CIPHERTEXT_VERSION = "v1"
CACHE_SECONDS = 5.0
TEST_TIMEOUT_SECONDS = 10.0
log = logging.getLogger("ailab.vault")


class UndecryptableKey(AILabError):
    """A stored key that the configured master keys cannot open."""

    status = 500
    code = "master_key_mismatch"


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


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class _FixedCredentials:
    """A credential store that knows one credential: the one under test."""

    def __init__(self, plugins: Plugins, service: str, credential: Credential) -> None:
        self._plugins, self._service, self._credential = plugins, service, credential

    async def get(self, service: str) -> Credential | None:
        return self._credential if self._plugins.canonical(service) == self._service else None


def _clean_detail(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "[REDACTED]")
    text = redact(text)
    return text if len(text) <= 300 else text[:300] + "..."


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
        self._cache: dict[str, tuple[float, Credential | None]] = {}
        self._generation = 0  # bumped on every change, so a read racing a write is not cached
        self._fernet = MultiFernet([Fernet(k.encode()) for k in master_keys])
        self._key_count = len(master_keys)
        self._file_stamp = self._stamp()

    # -- master keys -------------------------------------------------------------------------------

    @property
    def uses_key_file(self) -> bool:
        """Whether the master keys come from ``<data dir>/master.key`` (AILAB_MASTER_KEY unset)."""
        return self._settings.master_key is None

    def _stamp(self) -> tuple[int, int, int] | None:
        if not self.uses_key_file:
            return None
        try:
            st = os.stat(master_key_path(self._settings))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _use_keys(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self._key_count = len(keys)

    def _reload_key_file(self, *, only_if_changed: bool) -> bool:
        """Re-read the key file (blocking; call in a thread); whether the keys were replaced."""
        if not self.uses_key_file:
            return False
        stamp = self._stamp()
        if only_if_changed and stamp == self._file_stamp:
            return False
        try:
            keys = load_master_keys(self._settings, create=False)
        except ConfigError as exc:
            log.error("re-reading the master key file failed: %s", exc)
            return False
        self._use_keys(keys)
        self._file_stamp = stamp
        log.info("master key file re-read: %d key(s)", len(keys))
        return True

    def _encrypt(self, plaintext: str) -> str:
        return f"{CIPHERTEXT_VERSION}:{self._fernet.encrypt(plaintext.encode()).decode()}"

    def _open(self, service: str, ciphertext: str) -> str:
        version, sep, token = ciphertext.partition(":")
        if not sep or version != CIPHERTEXT_VERSION:
            raise UndecryptableKey(f"the stored key of {service} has an unknown format")
        return self._fernet.decrypt(token.encode()).decode()

    def _opens(self, row: ApiKey) -> bool:
        try:
            self._open(row.service, row.ciphertext)
        except (InvalidToken, UndecryptableKey):
            return False
        return True

    async def _decrypt(self, service: str, ciphertext: str) -> str:
        try:
            return self._open(service, ciphertext)
        except InvalidToken:
            pass
        # Maybe `ai-lab keys rotate` replaced the key file under us: re-read it once and retry.
        if await asyncio.to_thread(self._reload_key_file, only_if_changed=False):
            try:
                return self._open(service, ciphertext)
            except InvalidToken:
                pass
        raise UndecryptableKey(
            f"the stored key of {service} cannot be decrypted with the configured master key "
            "(AILAB_MASTER_KEY, or the master key file when it is unset)"
        )

    # -- the CredentialStore protocol --------------------------------------------------------------

    async def get(self, service: str) -> Credential | None:
        """The credential of ``service``: the vault's, else the settings', else None (cached briefly)."""
        name = self.plugins.canonical(service) or service
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        credential = await self._load(name)
        if generation == self._generation:
            self._cache[name] = (now + self._cache_seconds, credential)
        return credential

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
        secret = await self._decrypt(row.service, row.ciphertext)
        return Credential(api_key=secret or None, config=dict(row.config))

    def _invalidate(self) -> None:
        self._generation += 1
        self._cache.clear()

    # -- management --------------------------------------------------------------------------------

    def supported_services(self) -> list[str]:
        """The service names keys can be stored for: the installed plugins that take a credential."""
        return self.plugins.keyed()

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
            await asyncio.to_thread(self._reload_key_file, only_if_changed=True)
            # Never mix master keys: if the stored keys are under another one, say so and store nothing.
            other = await keys_repo.first_key(session, excluding=name)
            if other is not None and not self._opens(other):
                raise Conflict(
                    f"the stored key of {other.service} cannot be decrypted with the configured master key: "
                    "set AILAB_MASTER_KEY to the key the vault was written with before storing new keys"
                )
            row = await keys_repo.upsert_key(session, name, self._encrypt(key), clean_config)
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
                secret: str | None = await self._decrypt(row.service, row.ciphertext)
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
            result, detail = await self._probe(plugin, credential)
        now = utcnow()
        if row is not None:
            async with self._db.write() as session:
                await keys_repo.record_test(session, name, row.ciphertext, result, now)
        log.info("tested the API key of %s: %s", name, result)
        return TestOutcome(name, result, detail, now.isoformat())

    async def _probe(self, plugin: ProviderPlugin, credential: Credential) -> tuple[str, str]:
        """Build the plugin's provider around ``credential`` alone and list its models."""
        service = plugin.name
        context = ProviderContext(data_dir=self._settings.data_dir, timeout_s=TEST_TIMEOUT_SECONDS)
        try:
            settings = self.plugins.settings.get(service) or plugin.load_settings()
            provider: Provider | None = plugin.create(
                settings, _FixedCredentials(self.plugins, service, credential), context
            )
        except Exception as exc:  # noqa: BLE001 - a broken plugin is a test result, not a 500
            log.warning("the provider plugin %s failed to start: %s", service, type(exc).__name__)
            return "unreachable", f"the provider plugin failed to start ({type(exc).__name__})"
        if provider is None:
            return "unreachable", "the provider plugin is not configured (is a base URL set?)"
        try:
            async with asyncio.timeout(TEST_TIMEOUT_SECONDS):
                models = await provider.list_models()
        except ProviderAuthError as exc:
            detail = _clean_detail(exc.message, credential.api_key)
            return "invalid", f"the provider rejected the key: {detail}"
        except ProviderRateLimited:
            return "valid", "the provider accepted the key but is rate limiting it"
        except (ProviderUnavailable, ProviderTimeout) as exc:
            return "unreachable", _clean_detail(exc.message, credential.api_key)
        except TimeoutError:
            return "unreachable", f"no answer within {TEST_TIMEOUT_SECONDS:g} s"
        except ProviderError as exc:
            return "unreachable", "the provider answered with an error: " + _clean_detail(
                exc.message, credential.api_key
            )
        except Exception as exc:  # noqa: BLE001 - the test must answer, whatever the plugin does
            log.warning("testing the key of %s failed: %s", service, type(exc).__name__)
            return "unreachable", f"the check failed ({type(exc).__name__})"
        finally:
            try:
                await provider.aclose()
            except Exception as exc:  # noqa: BLE001 - closing must not change the answer
                log.debug("closing the probe provider of %s failed: %s", service, type(exc).__name__)
        return "valid", f"the provider accepted the key ({len(models)} models listed)"

    # -- the master key: start-up check and rotation -----------------------------------------------

    async def verify_master_key(self) -> None:
        """Raise :class:`ConfigError` naming AILAB_MASTER_KEY when a stored key cannot be decrypted."""
        async with self._db.read() as session:
            rows = list(await keys_repo.list_keys(session))
        bad = []
        for row in rows:
            try:
                await self._decrypt(row.service, row.ciphertext)
            except UndecryptableKey:
                bad.append(row.service)
        if bad:
            raise ConfigError(mismatch_message(self._settings, bad, len(rows)))

    async def rotate(self) -> RotationReport:
        """Re-encrypt every stored key under the newest master key, in one transaction.

        With the key file, first a new master key is generated and written in front of the old ones;
        after the re-encryption the file holds the new key only.
        """
        if not self.uses_key_file:
            count = await self._reencrypt()
            return RotationReport(count, "AILAB_MASTER_KEY", False, self._key_count - 1)
        path = master_key_path(self._settings)
        current = await asyncio.to_thread(load_master_keys, self._settings, create=False)
        self._use_keys(current)
        await self.verify_master_key()  # nothing is touched when a stored key is already unreadable
        new_key = Fernet.generate_key().decode()
        await asyncio.to_thread(write_key_file, path, [new_key, *current])
        self._use_keys([new_key, *current])
        count = await self._reencrypt()
        await asyncio.to_thread(write_key_file, path, [new_key])
        self._use_keys([new_key])
        self._file_stamp = await asyncio.to_thread(self._stamp)
        log.info("rotated the master key file: %d key(s) re-encrypted", count)
        return RotationReport(count, str(path), True, len(current))

    async def _reencrypt(self) -> int:
        async with self._db.write() as session:
            await keys_repo.lock_for_write(session)
            rows = list(await keys_repo.list_keys(session))
            for row in rows:
                version, _, token = row.ciphertext.partition(":")
                if version != CIPHERTEXT_VERSION:
                    raise UndecryptableKey(f"the stored key of {row.service} has an unknown format")
                try:
                    rotated = self._fernet.rotate(token.encode()).decode()
                except InvalidToken:
                    raise UndecryptableKey(
                        f"the stored key of {row.service} cannot be decrypted with the configured master "
                        "keys: nothing was changed; list the old key in AILAB_MASTER_KEY too"
                    ) from None
                await keys_repo.set_ciphertext(session, row.service, f"{CIPHERTEXT_VERSION}:{rotated}")
        self._invalidate()
        return len(rows)


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


async def check_stored_keys(settings: Settings) -> None:
    """The start-up check of ``ai-lab serve``: raise :class:`ConfigError` when the master key is wrong.

    A database that is not migrated yet, or has no keys, passes; the key file is not created here.
    """
    db = Database(settings.sqlalchemy_url, pool_size=1, max_overflow=0)
    try:
        try:
            async with db.read() as session:
                row = await keys_repo.first_key(session)
        except (SQLAlchemyError, OSError):
            return  # not migrated yet, or unreachable: the server's own start reports it
        if row is None:
            return
        path = master_key_path(settings)
        if settings.master_key is None and not await asyncio.to_thread(path.exists):
            raise ConfigError(
                "the database holds encrypted API keys but there is no master key: AILAB_MASTER_KEY is "
                f"unset and {path} does not exist. Set AILAB_MASTER_KEY to the key they were stored with."
            )
        keys = await asyncio.to_thread(load_master_keys, settings, create=False)
        await Vault(db, settings, keys).verify_master_key()
    finally:
        await db.close()
