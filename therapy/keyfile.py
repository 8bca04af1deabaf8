"""The master key file: kept outside the database, mode 0600, never silently replaced.

Format (JSON)::

    {"format": "haven-master-key/1", "current": "mk-…", "keys": {"mk-…": "<base64 32 bytes>"}}

The database records the id and a fingerprint of the current key in its ``meta`` table, so
starting with a key file that belongs to other data is refused instead of sealing new
records with the wrong key. During ``haven keys rotate`` the file holds the old and the new
key at once; see therapy.sealing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "haven-master-key/1"
KEY_BYTES = 32


class KeyFileError(Exception):
    """The key file is missing, unreadable, malformed, too open, or belongs to other data."""


def fingerprint(key: bytes) -> str:
    """A public, non-reversible identifier of a key (for matching, never for sealing)."""
    return hmac.new(key, b"haven/master-key/fingerprint/v1", hashlib.sha256).hexdigest()[:32]


@dataclass
class MasterKeyring:
    current: str
    keys: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self):
        if self.current not in self.keys:
            raise KeyFileError("key file: the current key id is not among its keys")
        for key_id, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyFileError(f"key file: key {key_id} is not {KEY_BYTES} bytes")

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]

    @classmethod
    def generate(cls) -> MasterKeyring:
        key_id = "mk-" + secrets.token_hex(6)
        return cls(current=key_id, keys={key_id: secrets.token_bytes(KEY_BYTES)})

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "current": self.current,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
            },
            indent=2,
        )


def write_keyfile(path: Path, ring: MasterKeyring) -> None:
    """Write atomically with mode 0600 (the temporary file is created 0600 too)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, ring.to_json().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_keyfile(path: Path) -> MasterKeyring:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyFileError(
            f"key file {path} has loose permissions {stat.filemode(st.st_mode)}; "
            f"run: chmod 600 {path}"
        )
    try:
        raw = json.loads(path.read_text())
    except PermissionError:
        raise KeyFileError(f"key file {path} is not readable by this user") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyFileError(f"key file {path} is not a Haven key file (not JSON)") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise KeyFileError(f"key file {path} is not a Haven key file (format {FORMAT!r} expected)")
    try:
        keys = {str(k): base64.b64decode(v, validate=True) for k, v in raw["keys"].items()}
        return MasterKeyring(current=str(raw["current"]), keys=keys)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise KeyFileError(f"key file {path} is malformed") from None
