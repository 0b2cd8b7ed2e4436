"""Users, passwords, access tokens and API tokens.

Two kinds of bearer credentials are accepted everywhere:

- access tokens from ``POST /auth/login``: JWTs (HS256) signed with a key derived from the master key,
  expiring after ``AILAB_ACCESS_TOKEN_TTL_SECONDS``; any configured master key verifies, the newest signs.
  A token issued before the user's row last changed (password, role, disabled) is refused, so changing a
  password or disabling a user ends the sessions opened before;
- API tokens (``ailab_...``) for scripts and the OpenAI SDK: random, shown once, stored as SHA-256,
  revocable; they survive a password change but not a disabled or deleted user.

Passwords are hashed with Argon2id, off the event loop. Login attempts are counted per user name and per
address before they are checked (:mod:`ailab.services.auth.throttle`): a locked name is refused, an address
over its limit is slowed down, one attempt at a time. Verified credentials are cached for a few seconds so the
gateway's hot path does not query the database per request; every change made through this service
(revoke, disable, delete, new password, new role) clears the cache at once, and other processes (the CLI,
other workers) are seen within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from ailab.config import ADMIN_NAME, Settings
from ailab.db.engine import Database
from ailab.db.repos import users as users_repo
from ailab.db.tables import ApiToken, User, utcnow
from ailab.errors import AuthError, Conflict, InvalidInput, NotFound, TooManyAttempts
from ailab.expiring import MISSING, ExpiringCache
from ailab.services.auth.throttle import ADDRESS_DELAY_S, LoginThrottle, MemoryThrottle
from ailab.services.masterkey import derive_key

API_TOKEN_PREFIX = "ailab_"  # noqa: S105 - a prefix, not a secret
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
CACHE_SECONDS = 5.0
CACHE_MAX_ENTRIES = 10_000
MAX_SLOWED_ADDRESSES = 10_000
# The credential cache's entry for AILAB_AUTH=off: no credential looks so (HTTP headers cannot hold a NUL).
LOCAL_ADMIN_KEY = "\x00local-admin"
JWT_ALGORITHM = "HS256"
SIGNING_KEY_INFO = "ailab access tokens"
LAST_USED_RESOLUTION = dt.timedelta(minutes=5)  # last_used_at is written at most this often
ROLES = ("admin", "user")
MAX_PASSWORD_LENGTH = 1024
MAX_TOKEN_NAME_LENGTH = 128
# argon2-cffi's defaults: argon2id, RFC 9106's second recommendation (t=3, m=64 MiB, p=4), ~0.1 s here.
PASSWORD_HASHER = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request; ``token_id`` names the API token it authenticated with (None for an
    access token, a browser session or ``AILAB_AUTH=off``), so usage and budgets can tell tokens apart."""

    id: str
    name: str
    role: str
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def new_token(
    user_id: str, name: str, *, kind: str = "api", expires_at: dt.datetime | None = None
) -> tuple[str, ApiToken]:
    """A new token of a user: its plaintext (never stored) and its row (the hash and a short prefix)."""
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=str(uuid.uuid4()),
        user_id=user_id,
        name=name,
        token_hash=hash_token(plaintext),
        prefix=plaintext[: len(API_TOKEN_PREFIX) + 4],
        created_at=utcnow(),
        kind=kind,
        expires_at=expires_at,
    )
    return plaintext, row


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def hash_password(password: str) -> str:
    """Argon2id hash of a password, computed in a worker thread."""
    return await asyncio.to_thread(PASSWORD_HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``, computed in a worker thread."""

    def _verify() -> bool:
        try:
            return PASSWORD_HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(_verify)


def validate_username(name: str) -> str:
    """Reject names that would be confusing in logs and URLs."""
    if not (1 <= len(name) <= 64) or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise InvalidInput("user names are 1-64 letters, digits, '.', '_' or '-'")
    return name


def validate_password(password: str) -> str:
    """Reject passwords too short to be safe (or too long to hash cheaply)."""
    if len(password) < 8:
        raise InvalidInput("passwords must be at least 8 characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"passwords must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def validate_role(role: str) -> str:
    """Reject unknown roles."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    return role


def principal_of(user: User) -> Principal:
    """The principal a user row stands for."""
    return Principal(user.id, user.name, user.role)


class AuthService:
    """Checks credentials and manages users and tokens."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        master_keys: list[str],
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._signing_keys = [derive_key(k, SIGNING_KEY_INFO) for k in master_keys]
        # Verified credentials by the credential itself (this process's memory holds it with each
        # request anyway): its hash is computed only when it is looked up in the database.
        self._cache: ExpiringCache[str, Principal] = ExpiringCache(CACHE_MAX_ENTRIES)
        self.throttle = throttle or MemoryThrottle(
            settings.login_max_failures, settings.login_lockout_seconds
        )
        self._slowed: OrderedDict[str, asyncio.Lock] = OrderedDict()  # addresses over their limit

    # -- credentials ---------------------------------------------------------------------------
    def issue_access_token(self, user: Principal) -> str:
        """A signed, expiring access token for ``user``."""
        now = time.time()
        # iat keeps its fraction: a token issued just after a password change must not look older.
        claims = {"sub": user.id, "iat": now, "exp": int(now) + self._settings.access_token_ttl_seconds}
        return jwt.encode(claims, self._signing_keys[0], algorithm=JWT_ALGORITHM)

    async def login(self, name: str, password: str, address: str | None = None) -> str:
        """Check a user's password and return an access token.

        The attempt is counted before the password is checked. Raises :class:`TooManyAttempts` while the
        name is locked (without checking the password); an address over its limit is slowed down, never
        refused. :class:`AuthError` on a wrong name or password or a disabled user.
        """
        return self.issue_access_token(principal_of(await self._admit(name, password, address)))

    async def _admit(self, name: str, password: str, address: str | None) -> User:
        """The user whose password this is, through the login throttle (see :meth:`login`)."""
        admission = await self.throttle.begin(name, address)
        if admission.name_wait > 0:
            raise TooManyAttempts("too many failed logins; try again later", retry_after=admission.name_wait)
        if admission.address_wait > 0 and address:
            async with self._slow_lane(address):  # one attempt at a time from that address, each late
                await asyncio.sleep(ADDRESS_DELAY_S)
                user = await self._check(name, password)
        else:
            user = await self._check(name, password)
        if user is None:
            raise AuthError("invalid user name or password")
        await self.throttle.succeeded(name, address)
        return user

    async def open_browser_session(
        self, name: str, password: str, address: str | None = None
    ) -> tuple[str, User]:
        """Check a password as :meth:`login` does and open a browser session: a token of kind
        ``browser`` (for an httpOnly cookie) that ends at :meth:`close_browser_session` or after the
        access-token lifetime. Returns the token (shown once) and the user."""
        await self._admit(name, password, address)
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, name)
            if user is None:  # deleted between the check and now
                raise AuthError("invalid user name or password")
            expires_at = utcnow() + dt.timedelta(seconds=self._settings.access_token_ttl_seconds)
            plaintext, row = new_token(user.id, "browser session", kind="browser", expires_at=expires_at)
            await users_repo.add_token(session, row)
        return plaintext, user

    async def close_browser_session(self, plaintext: str) -> None:
        """End a browser session at once (sign-out); an unknown one is ignored."""
        await self._db.run_write(users_repo.revoke_browser_session, hash_token(plaintext), utcnow())
        self._cache.pop(plaintext)

    async def _check(self, name: str, password: str) -> User | None:
        """The active user ``name`` if ``password`` is theirs."""
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, name)
        if user is None:
            await hash_password(password)  # same cost as a real check: names are not probeable
            return None
        if not await verify_password(user.password_hash, password) or user.disabled:
            return None
        return user

    def _slow_lane(self, address: str) -> asyncio.Lock:
        lane = self._slowed.pop(address, None) or asyncio.Lock()
        self._slowed[address] = lane
        while len(self._slowed) > MAX_SLOWED_ADDRESSES:
            self._slowed.popitem(last=False)
        return lane

    async def authenticate(self, bearer: str) -> Principal:
        """The principal a bearer credential stands for (cached ``CACHE_SECONDS``); raises AuthError."""
        hit = self._cache.cached(bearer)
        if hit is not MISSING:
            return hit

        async def load() -> tuple[Principal, float]:
            if bearer.startswith(API_TOKEN_PREFIX):
                return await self._authenticate_api_token(hash_token(bearer)), CACHE_SECONDS
            principal, expires = await self._authenticate_access_token(bearer)
            return principal, min(CACHE_SECONDS, expires - time.time())

        return await self._cache.get(bearer, load)

    async def _authenticate_access_token(self, token: str) -> tuple[Principal, float]:
        claims: dict[str, object] | None = None
        for key in self._signing_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "iat"]}
                )
            except jwt.ExpiredSignatureError:
                raise AuthError("access token expired") from None
            except jwt.PyJWTError:
                continue
            break
        if claims is None:
            raise AuthError("invalid access token")
        user = await self._db.run_read(users_repo.find_credential_user, str(claims["sub"]))
        if user is None or user.disabled:
            raise AuthError("invalid access token")
        issued = float(claims["iat"])  # type: ignore[arg-type]
        if issued < user.updated_at.timestamp():
            raise AuthError("access token issued before the account changed; log in again")
        return Principal(user.id, user.name, user.role), float(claims["exp"])  # type: ignore[arg-type]

    async def _authenticate_api_token(self, token_hash: str) -> Principal:
        row = await self._db.run_read(users_repo.find_token_user, token_hash)
        if row is None or row.revoked_at is not None or row.disabled:
            raise AuthError("invalid API token")
        now = utcnow()
        if row.kind == "browser" and (
            (row.expires_at is not None and row.expires_at <= now) or row.token_created_at < row.updated_at
        ):
            raise AuthError("your session has ended; sign in again")
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            await self._db.run_write(users_repo.touch_token, row.token_id, now)
        # A browser session is a token row too, but not one its user made: its use is the user's.
        return Principal(row.id, row.name, row.role, row.token_id if row.kind == "api" else None)

    def forget_cached(self) -> None:
        """Drop cached credentials (after a revocation, a password change or a disabled user)."""
        self._cache.clear()

    # -- users ---------------------------------------------------------------------------------
    async def create_user(self, name: str, password: str, role: str = "user") -> User:
        """Create a user; raises Conflict when the name is taken."""
        validate_username(name)
        validate_password(password)
        validate_role(role)
        password_hash = await hash_password(password)
        try:
            async with self._db.write() as session:
                if await users_repo.get_user_by_name(session, name) is not None:
                    raise Conflict(f"user {name!r} exists already")
                user = User(id=str(uuid.uuid4()), name=name, password_hash=password_hash, role=role)
                return await users_repo.add_user(session, user)
        except IntegrityError:  # created by another process between the check and the insert
            raise Conflict(f"user {name!r} exists already") from None

    async def get_user(self, name: str) -> User:
        """A user by name; raises NotFound."""
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    async def list_users(self) -> Sequence[User]:
        """Every user, by name."""
        async with self._db.read() as session:
            return await users_repo.list_users(session)

    async def update_user(
        self,
        name: str,
        *,
        disabled: bool | None = None,
        role: str | None = None,
        password: str | None = None,
    ) -> User:
        """Change a user's flags, role or password; effective at once in this process.

        Refuses (Conflict) to disable or demote the last active admin, so the server stays manageable.
        """
        if role is not None:
            validate_role(role)
        password_hash = await hash_password(validate_password(password)) if password is not None else None
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            losing_admin = user.role == "admin" and not user.disabled
            losing_admin = losing_admin and (disabled is True or (role is not None and role != "admin"))
            if losing_admin and await users_repo.count_active_admins(session) <= 1:
                raise Conflict(f"{name!r} is the last active admin; make another admin first")
            if disabled is not None:
                user.disabled = disabled
            if role is not None:
                user.role = role
            if password_hash is not None:
                user.password_hash = password_hash
            await session.flush()
        self.forget_cached()
        return user

    async def set_password(self, name: str, password: str) -> None:
        """Change a user's password (ending the sessions opened with the old one)."""
        await self.update_user(name, password=password)

    async def delete_user(self, name: str) -> int:
        """Delete a user with their sessions, tokens and benchmark runs; returns the sessions deleted.

        Refuses (Conflict) to delete the last active admin.
        """
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, name)
            if user is None:
                raise NotFound(f"no user {name!r}")
            active_admin = user.role == "admin" and not user.disabled
            if active_admin and await users_repo.count_active_admins(session) <= 1:
                raise Conflict(f"{name!r} is the last active admin; make another admin first")
            sessions = await users_repo.count_sessions_of(session, user.id)
            await users_repo.delete_user(session, user.id)
        self.forget_cached()
        return sessions

    async def count_sessions(self, name: str) -> int:
        """How many sessions a user owns."""
        user = await self.get_user(name)
        async with self._db.read() as session:
            return await users_repo.count_sessions_of(session, user.id)

    # -- API tokens ----------------------------------------------------------------------------
    async def create_api_token(self, user_name: str, token_name: str) -> tuple[str, ApiToken]:
        """Create an API token for a user; the plaintext is returned once and never stored."""
        token_name = token_name.strip()
        if not (1 <= len(token_name) <= MAX_TOKEN_NAME_LENGTH):
            raise InvalidInput(f"token names are 1-{MAX_TOKEN_NAME_LENGTH} characters")
        async with self._db.write() as session:
            user = await users_repo.get_user_by_name(session, user_name)
            if user is None:
                raise NotFound(f"no user {user_name!r}")
            plaintext, row = new_token(user.id, token_name)
            await users_repo.add_token(session, row)
        return plaintext, row

    async def list_api_tokens(self, user_id: str | None = None) -> Sequence[tuple[ApiToken, str]]:
        """API tokens with their owner's name: one user's (``user_id``) or everyone's."""
        async with self._db.read() as session:
            return await users_repo.list_tokens(session, user_id)

    async def revoke_api_token(self, token_id: str, user_id: str | None = None) -> ApiToken:
        """Revoke a token, refused at once in this process; with ``user_id`` only that user's tokens.

        Another user's token answers NotFound, like a missing one. Revoking twice is harmless.
        """
        async with self._db.write() as session:
            token = await users_repo.get_token(session, token_id)
            if token is None or (user_id is not None and token.user_id != user_id):
                raise NotFound(f"no API token {token_id!r}")
            if token.revoked_at is None:
                token.revoked_at = utcnow()
        self.forget_cached()
        return token

    # -- start-up ------------------------------------------------------------------------------
    async def ensure_admin(self) -> Path | None:
        """Make sure someone can log in, at start.

        With ``AILAB_ADMIN_PASSWORD`` the user ``admin`` is created or, when its password differs, updated
        (left alone when it already matches, so a restart does not end everyone's sessions). Otherwise,
        when no user exists, ``admin`` is created with a random password written to
        ``<data dir>/initial-admin-password`` (0600); that path is returned so it can be logged.
        Several processes may run this at once: the unique user name lets one win.
        """
        configured = self._settings.admin_password
        if configured is not None:
            password = configured.get_secret_value()
            try:
                await self.create_user(ADMIN_NAME, password, "admin")
            except Conflict:
                current = await self.get_user(ADMIN_NAME)
                if not await verify_password(current.password_hash, password):
                    await self.set_password(ADMIN_NAME, password)
            return None
        async with self._db.read() as session:
            if await users_repo.count_users(session) > 0:
                return None
        password = secrets.token_urlsafe(18)
        try:
            await self.create_user(ADMIN_NAME, password, "admin")
        except Conflict:
            return None  # another process created it first
        path = self._settings.data_dir / INITIAL_PASSWORD_FILE
        await asyncio.to_thread(_write_private_file, path, password + "\n")
        return path

    async def local_admin(self) -> Principal:
        """Who acts for every request when ``AILAB_AUTH=off``: ``admin``, else the first active admin.

        Cached like verified credentials (``CACHE_SECONDS``): the anonymous path must cost no more than a
        token's (it was a database read per request).
        """
        hit = self._cache.cached(LOCAL_ADMIN_KEY)
        if hit is not MISSING:
            return hit

        async def load() -> tuple[Principal, float]:
            return await self._find_local_admin(), CACHE_SECONDS

        return await self._cache.get(LOCAL_ADMIN_KEY, load)

    async def _find_local_admin(self) -> Principal:
        async with self._db.read() as session:
            user = await users_repo.get_user_by_name(session, ADMIN_NAME)
            if user is None or user.disabled or user.role != "admin":
                everyone = await users_repo.list_users(session)
                user = next((u for u in everyone if u.role == "admin" and not u.disabled), None)
        if user is None:
            raise AuthError("no active admin user")
        return principal_of(user)


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed already
