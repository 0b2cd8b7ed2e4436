"""Users, passwords, access tokens and API tokens.

Two kinds of bearer credentials are accepted everywhere:

- access tokens from ``POST /auth/login``: JWTs (HS256) signed with a key derived from the master key,
  expiring after ``AILAB_ACCESS_TOKEN_TTL_SECONDS``; any configured master key verifies, the newest signs;
- API tokens (``ailab_...``) for scripts and the OpenAI SDK: random, shown once, stored as SHA-256.

Passwords are hashed with Argon2id, off the event loop. Verified credentials are cached for a few
seconds so the gateway's hot path does not query the database per request; revoking or disabling through
this service clears the cache at once, and other processes see it within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from ailab.config import Settings
from ailab.db.engine import Database
from ailab.db.repos import users as users_repo
from ailab.db.tables import ApiToken, User, utcnow
from ailab.errors import AuthError, Conflict, InvalidInput, NotFound
from ailab.services.masterkey import derive_key

ADMIN_NAME = "admin"
API_TOKEN_PREFIX = "ailab_"  # noqa: S105 - a prefix, not a secret
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
CACHE_SECONDS = 5.0
CACHE_MAX_ENTRIES = 10_000
JWT_ALGORITHM = "HS256"
ROLES = ("admin", "user")
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request."""

    id: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def hash_password(password: str) -> str:
    """Argon2id hash of a password, computed in a worker thread."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``, computed in a worker thread."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def validate_username(name: str) -> str:
    """Reject names that would be confusing in logs and URLs."""
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-" for c in name):
        raise InvalidInput("user names are 1-64 letters, digits, '.', '_' or '-'")
    return name


def validate_password(password: str) -> str:
    """Reject passwords too short to be safe."""
    if len(password) < 8:
        raise InvalidInput("passwords must be at least 8 characters")
    return password


class AuthService:
    """Checks credentials and manages users and tokens."""

    def __init__(self, db: Database, settings: Settings, master_keys: list[str]) -> None:
        self._db = db
        self._settings = settings
        self._signing_keys = [derive_key(k, "ailab access tokens") for k in master_keys]
        self._cache: dict[str, tuple[float, Principal]] = {}

    # -- credentials ---------------------------------------------------------------------------
    def issue_access_token(self, user: Principal) -> str:
        """A signed, expiring access token for ``user``."""
        now = int(time.time())
        claims = {"sub": user.id, "iat": now, "exp": now + self._settings.access_token_ttl_seconds}
        return jwt.encode(claims, self._signing_keys[0], algorithm=JWT_ALGORITHM)

    async def login(self, name: str, password: str) -> str:
        """Check a user's password and return an access token; raises AuthError."""
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, name)
        if user is None:
            await hash_password(password)  # same cost as a real check: names are not probeable
            raise AuthError("invalid user name or password")
        if not await verify_password(user.password_hash, password) or user.disabled:
            raise AuthError("invalid user name or password")
        return self.issue_access_token(Principal(user.id, user.name, user.role))

    async def authenticate(self, bearer: str) -> Principal:
        """The principal a bearer credential stands for; raises AuthError."""
        cache_key = hash_token(bearer)
        cached = self._cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        if bearer.startswith(API_TOKEN_PREFIX):
            principal = await self._authenticate_api_token(cache_key)
        else:
            principal = await self._authenticate_access_token(bearer)
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[cache_key] = (now + CACHE_SECONDS, principal)
        return principal

    async def _authenticate_access_token(self, token: str) -> Principal:
        user_id: str | None = None
        for key in self._signing_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]}
                )
            except jwt.ExpiredSignatureError:
                raise AuthError("access token expired") from None
            except jwt.PyJWTError:
                continue
            user_id = str(claims["sub"])
            break
        if user_id is None:
            raise AuthError("invalid access token")
        async with self._db.read() as session:
            user = await users_repo.get_user(session, user_id)
        if user is None or user.disabled:
            raise AuthError("invalid access token")
        return Principal(user.id, user.name, user.role)

    async def _authenticate_api_token(self, token_hash: str) -> Principal:
        async with self._db.read() as session:
            token = await users_repo.get_token_by_hash(session, token_hash)
            user = await users_repo.get_user(session, token.user_id) if token else None
        if token is None or token.revoked_at is not None or user is None or user.disabled:
            raise AuthError("invalid API token")
        return Principal(user.id, user.name, user.role)

    def forget_cached(self) -> None:
        """Drop cached credentials (after a revocation, a password change or a disabled user)."""
        self._cache.clear()

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, name: str, password: str, role: str = "user") -> User:
        """Create a user; raises Conflict when the name is taken."""
        validate_username(name)
        validate_password(password)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        password_hash = await hash_password(password)
        async with self._db.write() as session:
            if await users_repo.get_user_by_name(session, name) is not None:
                raise Conflict(f"user {name!r} exists already")
            user = User(id=str(uuid.uuid4()), name=name, password_hash=password_hash, role=role)
            return await users_repo.add_user(session, user)

    async def set_password(self, name: str, password: str) -> None:
        """Change a user's password."""
        validate_password(password)
        password_hash = await hash_password(password)
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            user.password_hash = password_hash
        self.forget_cached()

    async def create_api_token(self, user_name: str, token_name: str) -> tuple[str, ApiToken]:
        """Create an API token for a user; the plaintext is returned once and never stored."""
        plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, user_name)
            if user is None:
                raise NotFound(f"no user {user_name!r}")
            row = ApiToken(
                id=str(uuid.uuid4()),
                user_id=user.id,
                name=token_name,
                token_hash=hash_token(plaintext),
                prefix=plaintext[: len(API_TOKEN_PREFIX) + 4],
                created_at=utcnow(),
            )
            await users_repo.add_token(session, row)
        return plaintext, row

    async def ensure_admin(self) -> Path | None:
        """Make sure someone can log in, at start.

        With ``AILAB_ADMIN_PASSWORD`` the user ``admin`` is created or its password updated. Otherwise,
        when no user exists, ``admin`` is created with a random password written to
        ``<data dir>/initial-admin-password`` (0600); that path is returned so it can be logged.
        Several processes may run this at once: the unique user name lets one win.
        """
        configured = self._settings.admin_password
        if configured is not None:
            try:
                await self.create_user(ADMIN_NAME, configured.get_secret_value(), "admin")
            except Conflict:
                await self.set_password(ADMIN_NAME, configured.get_secret_value())
            return None
        async with self._db.read() as session:
            if await users_repo.count_users(session) > 0:
                return None
        password = secrets.token_urlsafe(18)
        try:
            await self.create_user(ADMIN_NAME, password, "admin")
        except (Conflict, IntegrityError):
            return None  # another process created it first
        path = self._settings.data_dir / INITIAL_PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return path

    async def local_admin(self) -> Principal:
        """The admin user, acting for every request when ``AILAB_AUTH=off``."""
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, ADMIN_NAME)
        if user is None:
            raise AuthError("no admin user")
        return Principal(user.id, user.name, user.role)
