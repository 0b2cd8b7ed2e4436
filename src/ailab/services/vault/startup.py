"""The start-up check of ``ai-lab serve``: refuse to start when the master key cannot open stored keys."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import SQLAlchemyError

from ailab.config import ConfigError, Settings
from ailab.db.engine import Database
from ailab.db.repos import keys as keys_repo
from ailab.services.masterkey import load_master_keys, master_key_path
from ailab.services.vault.store import Vault


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
