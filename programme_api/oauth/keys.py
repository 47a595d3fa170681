"""Signing keys: the file that holds them, the JWKS that publishes them, and rotation.

The key file (setting ``SECRET_KEY_FILE``) is JSON, readable by the service's user only (mode 0600)::

    {"version": 1, "session_secret": "...", "keys": [{"kid": "...", "created_at": 1700000000, "jwk": {...}}]}

Keys are ES256 (P-256). The newest key signs; a key is retired when a newer one is added, and its public half
stays in the JWKS (and keeps verifying) for ``KEY_RETENTION`` after that, long enough for every token it
signed to expire. The same file holds the secret that signs the sign-in session cookie, so every worker that
reads the file agrees on both.

Workers notice a rotation by the file's identity (inode, modification time and size, checked at most every
``reload_interval`` seconds, and at once when a token names an unknown ``kid``), so ``programme-api keys
rotate`` needs no restart. The file is created on first use; concurrent first starts race safely because
the complete file is hard-linked into place, which fails for everyone but the first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .lifetimes import CLOCK_SKEW, MAX_ACCESS_TOKEN_LIFETIME

log = logging.getLogger(__name__)

SIGNING_ALGORITHM = "ES256"
FILE_VERSION = 1
#: Workers pick up a new key within this many seconds of a rotation.
RELOAD_INTERVAL_SECONDS = 5.0
#: How long a retired key stays published and trusted.
KEY_RETENTION_SECONDS = int((MAX_ACCESS_TOKEN_LIFETIME + CLOCK_SKEW).total_seconds()) + int(RELOAD_INTERVAL_SECONDS) * 2


class KeyFileError(Exception):
    """The key file exists but cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: int
    key: ECKey

    def public_jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "alg": SIGNING_ALGORITHM, "use": "sig"})
        return public

    @cached_property
    def public_key(self) -> ECKey:
        """The verifying half alone, so a verification path can never touch the private key."""
        return ECKey.import_key(self.public_jwk())


@dataclass(frozen=True)
class KeyFile:
    """The parsed file: keys in the order they were added (the last one signs), and the cookie secret."""

    session_secret: str
    keys: tuple[SigningKey, ...]

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def trusted(self, now: float) -> tuple[SigningKey, ...]:
        """The current key and every retired key whose tokens may still be unexpired.

        A key is retired when the next one is added, so it is trusted until that moment plus the retention.
        """
        last = len(self.keys) - 1
        return tuple(
            key
            for index, key in enumerate(self.keys)
            if index == last or self.keys[index + 1].created_at + KEY_RETENTION_SECONDS > now
        )

    def to_json(self) -> str:
        entries = [{"kid": k.kid, "created_at": k.created_at, "jwk": k.key.as_dict(private=True)} for k in self.keys]
        document = {"version": FILE_VERSION, "session_secret": self.session_secret, "keys": entries}
        return json.dumps(document, indent=2)


def new_signing_key(now: float) -> SigningKey:
    key = ECKey.generate_key("P-256", parameters={"alg": SIGNING_ALGORITHM, "use": "sig"}, private=True)
    return SigningKey(kid=key.thumbprint(), created_at=int(now), key=key)


def parse_key_file(path: Path, text: str) -> KeyFile:
    try:
        document = json.loads(text)
        if document.get("version") != FILE_VERSION:
            raise KeyFileError(f"{path}: unsupported key file version {document.get('version')!r}")
        keys = tuple(
            SigningKey(kid=str(entry["kid"]), created_at=int(entry["created_at"]), key=ECKey.import_key(entry["jwk"]))
            for entry in document["keys"]
        )
        session_secret = str(document["session_secret"])
    except (ValueError, KeyError, TypeError, AttributeError, JoseError) as exc:
        raise KeyFileError(f"{path}: not a valid key file ({type(exc).__name__})") from exc
    if not keys or not all(k.key.is_private for k in keys) or len(session_secret) < 32:
        raise KeyFileError(f"{path}: key file has no usable private key or session secret")
    return KeyFile(session_secret=session_secret, keys=keys)


def _write_private(path: Path, content: str) -> Path:
    """Write ``content`` to a fresh temporary file beside ``path``, readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def read_key_file(path: Path) -> KeyFile:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; run `chmod 600 %s`", path, path)
    return parse_key_file(path, text)


def load_or_create(path: Path, now: float | None = None) -> KeyFile:
    """Read the key file, creating it with one key and a session secret when it does not exist yet."""
    if path.exists():
        return read_key_file(path)
    moment = time.time() if now is None else now
    fresh = KeyFile(session_secret=secrets.token_urlsafe(48), keys=(new_signing_key(moment),))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _write_private(path, fresh.to_json())
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror or exc}") from exc
    try:
        os.link(temporary, path)
        log.info("created signing key file %s (key %s)", path, fresh.current.kid)
    except FileExistsError:
        return read_key_file(path)  # another worker won the race; use its keys
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return fresh


def rotate(path: Path, now: float | None = None) -> tuple[SigningKey, KeyFile]:
    """Add a new signing key and drop keys no token can still need. Returns the new key and the file."""
    moment = time.time() if now is None else now
    existing = load_or_create(path, moment)
    added = new_signing_key(moment)
    grown = KeyFile(existing.session_secret, (*existing.keys, added))
    kept = KeyFile(grown.session_secret, grown.trusted(moment))
    try:
        temporary = _write_private(path, kept.to_json())
        os.replace(temporary, path)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
    return added, kept


class KeyRing:
    """One process's view of the key file, reloaded when the file changes."""

    def __init__(
        self,
        path: Path,
        *,
        reload_interval: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._reload_interval = RELOAD_INTERVAL_SECONDS if reload_interval is None else reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._file = load_or_create(path, clock())
        self._fingerprint = self._stat_fingerprint()
        self._checked_at = time.monotonic()
        self._generation = 0

    def _stat_fingerprint(self) -> tuple[int, int, int]:
        """Identity of the file's current content: rotation replaces the file, so the inode changes too."""
        try:
            status = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed; a broken file keeps the keys already loaded (and is logged)."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._reload_interval:
            return
        with self._lock:
            self._checked_at = now
            fingerprint = self._stat_fingerprint()
            if fingerprint == self._fingerprint:
                return
            try:
                self._file = read_key_file(self.path)
                self._fingerprint = fingerprint
                self._generation += 1
            except KeyFileError as exc:
                log.error("keeping previously loaded signing keys: %s", exc)

    def generation(self) -> int:
        """Counts reloads of the file: a verdict cached under an older generation is checked again."""
        self._refresh()
        return self._generation

    @property
    def session_secret(self) -> str:
        return self._file.session_secret

    def signing_key(self) -> SigningKey:
        self._refresh()
        return self._file.current

    def verification_key(self, kid: str) -> ECKey | None:
        """The public key named ``kid`` if it is still trusted; an unknown kid triggers one reload."""
        self._refresh()
        found = self._find(kid)
        if found is None:
            self._refresh(force=True)
            found = self._find(kid)
        return found

    def _find(self, kid: str) -> ECKey | None:
        for entry in self._file.trusted(self._clock()):
            if entry.kid == kid:
                return entry.public_key
        return None

    def jwks(self) -> dict[str, Any]:
        self._refresh()
        return {"keys": [entry.public_jwk() for entry in reversed(self._file.trusted(self._clock()))]}
