"""Client-to-client key exchange for Haven's end-to-end encrypted voice.

Leaf module: only the standard library, ``cryptography`` and :mod:`media.sframe`.
The server only relays the JSON produced here; it never holds a private key or media key.

Every primitive has a WebCrypto equivalent (Ed25519 sign/verify, X25519 deriveBits,
HKDF-SHA-256, AES-GCM, SHA-256), public keys are raw 32-byte values and every signed or
authenticated byte string uses the canonical encoding of :func:`canonical_encode`.
``docs/protocol.md`` ("Key exchange format") specifies the bytes exactly.

Pieces:

* :class:`IdentityKeys` - a participant's Ed25519 signing pair and X25519 agreement pair;
  saved to a 0600 JSON key file.
* :class:`IdentityCard` - the public half, self-signed; always verified on construction.
* :func:`wrap_sender_key` / :func:`unwrap_sender_key` - a sender's SFrame base key
  encrypted to one recipient (X25519 + HKDF + AES-256-GCM, identity and key ids in the AAD)
  and signed with the sender's Ed25519 key.
* :class:`SenderKeyManager` - join/leave lifecycle (ratchet on join, new generation on leave).
* :func:`security_code` - the short code participants compare aloud to detect a server
  that substitutes identity keys.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from media.sframe import (
    AES_128_GCM_SHA256_128,
    MAX_GENERATION,
    MAX_RATCHET_STEP,
    MAX_SENDER_ID,
    SenderKey,
    SFrameConfigError,
    SFrameReceiver,
    SFrameSender,
    get_cipher_suite,
)

__all__ = [
    "CARD_LABEL",
    "CODE_LABEL",
    "COMMIT_LABEL",
    "KEYFILE_TYPE",
    "WRAP_AAD_LABEL",
    "WRAP_KDF_LABEL",
    "WRAP_SIG_LABEL",
    "E2EEError",
    "IdentityCard",
    "IdentityCardError",
    "IdentityKeys",
    "KeyExchangeError",
    "KeyFileError",
    "KeyFilePermissionError",
    "Member",
    "SenderKeyManager",
    "WrappedKey",
    "b64u_decode",
    "b64u_encode",
    "canonical_encode",
    "commitment",
    "security_code",
    "unwrap_sender_key",
    "wrap_sender_key",
]

# Domain-separation labels (ASCII). Never reuse one label for two purposes.
CARD_LABEL = b"haven/e2ee/v1 identity-card"
WRAP_KDF_LABEL = b"haven/e2ee/v1 key-wrap"
WRAP_AAD_LABEL = b"haven/e2ee/v1 key-wrap aad"
WRAP_SIG_LABEL = b"haven/e2ee/v1 key-wrap signature"
CODE_LABEL = b"haven/e2ee/v1 security-code"
COMMIT_LABEL = b"haven/e2ee/v1 security-code commitment"
KEYFILE_TYPE = "haven-identity-v1"

_MAX_JS_INT = (1 << 53) - 1  # integers stay exact in JavaScript numbers
_MAX_ID_LEN = 256  # bytes of UTF-8 for room / participant ids
_ZERO_SALT = bytes(32)


# --------------------------------------------------------------------------- errors


class E2EEError(Exception):
    """Base class of this module's errors."""


class KeyExchangeError(E2EEError):
    """A wrapped key or identity card was malformed, not authentic or not for us."""


class IdentityCardError(KeyExchangeError):
    """An identity card is malformed or its self-signature does not verify."""


class KeyFileError(E2EEError):
    """The identity key file is missing, unreadable or malformed."""


class KeyFilePermissionError(KeyFileError, PermissionError):
    """The identity key file is readable or writable by group/others, or not ours."""


# --------------------------------------------------------------------------- encodings


def b64u_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64U_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64u_decode(text: object, *, length: int | None = None, what: str = "field") -> bytes:
    """Strict base64url decoding: no padding, no other characters, canonical form only."""
    if not isinstance(text, str) or not _B64U_RE.fullmatch(text) or len(text) % 4 == 1:
        raise KeyExchangeError(f"{what}: not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise KeyExchangeError(f"{what}: not unpadded base64url") from None
    if b64u_encode(data) != text:
        raise KeyExchangeError(f"{what}: non-canonical base64url")
    if length is not None and len(data) != length:
        raise KeyExchangeError(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def canonical_encode(*fields: bytes | str | int) -> bytes:
    """Unambiguous concatenation: each field is a 4-byte big-endian length, then its bytes.

    ``str`` fields are UTF-8; ``int`` fields (0..2**53-1) are first written as 8 bytes
    big-endian, so they appear as ``00000008`` followed by the 8 bytes.
    """
    out = bytearray()
    for value in fields:
        if isinstance(value, bool):
            raise TypeError("booleans are not encodable")
        if isinstance(value, int):
            if not 0 <= value <= _MAX_JS_INT:
                raise ValueError("integer fields must be in 0..2**53-1")
            data = value.to_bytes(8, "big")
        elif isinstance(value, str):
            data = value.encode("utf-8")
        elif isinstance(value, bytes | bytearray):
            data = bytes(value)
        else:
            raise TypeError(f"cannot encode {type(value).__name__}")
        out += len(data).to_bytes(4, "big") + data
    return bytes(out)


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise KeyExchangeError(f"{name} must be a non-empty string")
    if len(value.encode("utf-8", "surrogatepass")) > _MAX_ID_LEN:
        raise KeyExchangeError(f"{name} is longer than {_MAX_ID_LEN} bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise KeyExchangeError(f"{name} is not valid Unicode text") from None


def _check_uint(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise KeyExchangeError(f"{name} must be an integer in 0..{maximum}")


# --------------------------------------------------------------------------- identity


def _card_message(ed25519_public: bytes, x25519_public: bytes) -> bytes:
    return canonical_encode(CARD_LABEL, ed25519_public, x25519_public)


@dataclass(frozen=True)
class IdentityCard:
    """Public identity: raw Ed25519 and X25519 keys, bound by an Ed25519 signature."""

    ed25519: bytes
    x25519: bytes
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name, size in (("ed25519", 32), ("x25519", 32), ("signature", 64)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise IdentityCardError(f"{name} must be {size} bytes")
        self.verify()

    def verify(self) -> None:
        """Raise :class:`IdentityCardError` unless the self-signature is valid."""
        try:
            Ed25519PublicKey.from_public_bytes(self.ed25519).verify(
                self.signature, _card_message(self.ed25519, self.x25519)
            )
        except (InvalidSignature, ValueError):
            raise IdentityCardError("identity card signature does not verify") from None

    @property
    def fingerprint(self) -> bytes:
        """The 64 bytes ``ed25519 || x25519`` that the security code is computed over."""
        return self.ed25519 + self.x25519

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "ed25519": b64u_encode(self.ed25519),
            "x25519": b64u_encode(self.x25519),
            "sig": b64u_encode(self.signature),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IdentityCard:
        if not isinstance(data, Mapping) or set(data) != {"v", "ed25519", "x25519", "sig"}:
            raise IdentityCardError(
                "identity card needs exactly the fields v, ed25519, x25519, sig"
            )
        if data["v"] != 1 or isinstance(data["v"], bool):
            raise IdentityCardError("unsupported identity card version")
        try:
            return cls(
                b64u_decode(data["ed25519"], length=32, what="ed25519"),
                b64u_decode(data["x25519"], length=32, what="x25519"),
                b64u_decode(data["sig"], length=64, what="sig"),
            )
        except IdentityCardError:
            raise
        except KeyExchangeError as exc:
            raise IdentityCardError(str(exc)) from None


@dataclass(frozen=True, eq=False)
class IdentityKeys:
    """A participant's private keys. Keep them in a 0600 key file or in memory only."""

    signing_key: Ed25519PrivateKey = field(repr=False)
    agreement_key: X25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.signing_key, Ed25519PrivateKey):
            raise TypeError("signing_key must be an Ed25519PrivateKey")
        if not isinstance(self.agreement_key, X25519PrivateKey):
            raise TypeError("agreement_key must be an X25519PrivateKey")

    @classmethod
    def generate(cls) -> IdentityKeys:
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def with_fresh_agreement_key(self) -> IdentityKeys:
        """Same signing identity, new X25519 pair (use one per session for forward secrecy)."""
        return IdentityKeys(self.signing_key, X25519PrivateKey.generate())

    @property
    def ed25519_public(self) -> bytes:
        return self.signing_key.public_key().public_bytes_raw()

    @property
    def x25519_public(self) -> bytes:
        return self.agreement_key.public_key().public_bytes_raw()

    def card(self) -> IdentityCard:
        ed, x = self.ed25519_public, self.x25519_public
        return IdentityCard(ed, x, self.signing_key.sign(_card_message(ed, x)))

    # -- key file ----------------------------------------------------------------------

    def to_private_dict(self) -> dict[str, Any]:
        return {
            "type": KEYFILE_TYPE,
            "ed25519_private": b64u_encode(self.signing_key.private_bytes_raw()),
            "x25519_private": b64u_encode(self.agreement_key.private_bytes_raw()),
        }

    @classmethod
    def from_private_dict(cls, data: Mapping[str, Any]) -> IdentityKeys:
        if not isinstance(data, Mapping) or data.get("type") != KEYFILE_TYPE:
            raise KeyFileError(f"not a {KEYFILE_TYPE} key file")
        try:
            ed = b64u_decode(data.get("ed25519_private"), length=32, what="ed25519_private")
            x = b64u_decode(data.get("x25519_private"), length=32, what="x25519_private")
        except KeyExchangeError as exc:
            raise KeyFileError(str(exc)) from None
        return cls(Ed25519PrivateKey.from_private_bytes(ed), X25519PrivateKey.from_private_bytes(x))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file atomically with mode 0600 (replacing an existing file)."""
        path = Path(path)
        payload = (json.dumps(self.to_private_dict(), indent=2) + "\n").encode("ascii")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # independent of the umask
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IdentityKeys:
        """Read a key file; refuse it if group/others have any access or it is not ours."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise KeyFileError(f"identity key file {path} does not exist") from None
        except OSError as exc:
            raise KeyFileError(f"cannot open identity key file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if os.name == "posix":
                if st.st_mode & 0o077:
                    raise KeyFilePermissionError(
                        f"identity key file {path} has mode {stat.S_IMODE(st.st_mode):04o}; "
                        f"it must not be accessible by group or others (run: chmod 600 {path})"
                    )
                if st.st_uid != os.geteuid():
                    raise KeyFilePermissionError(
                        f"identity key file {path} is owned by uid {st.st_uid}, not by us"
                    )
            raw = fh.read(64 * 1024)
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyFileError(f"identity key file {path} is not valid JSON") from None
        return cls.from_private_dict(data)


@dataclass(frozen=True)
class Member:
    """A room member as announced by the server: ids plus the (verified) identity card."""

    participant_id: str
    sender_id: int  # SFrame sender id, 0..4095, assigned by the server per room
    card: IdentityCard

    def __post_init__(self) -> None:
        _check_id("participant_id", self.participant_id)
        _check_uint("sender_id", self.sender_id, MAX_SENDER_ID)
        if not isinstance(self.card, IdentityCard):
            raise KeyExchangeError("card must be an IdentityCard")


# --------------------------------------------------------------------------- key wrapping


def _wrap_key(
    private: X25519PrivateKey, peer_public: bytes, sender_x: bytes, recipient_x: bytes
) -> bytes:
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError:
        raise KeyExchangeError("X25519 agreement failed (low-order public key)") from None
    if shared == bytes(32):
        raise KeyExchangeError("X25519 agreement produced the all-zero secret")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=_ZERO_SALT,
        info=WRAP_KDF_LABEL + sender_x + recipient_x,
    ).derive(shared)


@dataclass(frozen=True)
class WrappedKey:
    """A sender key encrypted to one recipient and signed by the sender's identity."""

    room_id: str
    sender_participant_id: str
    recipient_participant_id: str
    sender_id: int
    generation: int
    ratchet_step: int
    cipher_suite: int
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_id("room_id", self.room_id)
        _check_id("sender_participant_id", self.sender_participant_id)
        _check_id("recipient_participant_id", self.recipient_participant_id)
        _check_uint("sender_id", self.sender_id, MAX_SENDER_ID)
        _check_uint("generation", self.generation, MAX_GENERATION)
        _check_uint("ratchet_step", self.ratchet_step, MAX_RATCHET_STEP)
        _check_uint("cipher_suite", self.cipher_suite, 0xFFFF)
        for name, lo, hi in (("nonce", 12, 12), ("ciphertext", 32, 80), ("signature", 64, 64)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not lo <= len(value) <= hi:
                raise KeyExchangeError(f"{name} must be {lo}..{hi} bytes")

    def aad(self) -> bytes:
        return canonical_encode(
            WRAP_AAD_LABEL,
            self.room_id,
            self.sender_participant_id,
            self.recipient_participant_id,
            self.sender_id,
            self.generation,
            self.ratchet_step,
            self.cipher_suite,
        )

    def signed_message(self) -> bytes:
        return canonical_encode(WRAP_SIG_LABEL, self.aad(), self.nonce, self.ciphertext)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "room": self.room_id,
            "from": self.sender_participant_id,
            "to": self.recipient_participant_id,
            "sender_id": self.sender_id,
            "generation": self.generation,
            "ratchet_step": self.ratchet_step,
            "suite": self.cipher_suite,
            "nonce": b64u_encode(self.nonce),
            "ct": b64u_encode(self.ciphertext),
            "sig": b64u_encode(self.signature),
        }

    _FIELDS = frozenset(
        ("v", "room", "from", "to", "sender_id", "generation", "ratchet_step", "suite",
         "nonce", "ct", "sig")
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WrappedKey:
        if not isinstance(data, Mapping) or set(data) != cls._FIELDS:
            raise KeyExchangeError(
                "wrapped key needs exactly the fields " + ", ".join(sorted(cls._FIELDS))
            )
        if data["v"] != 1 or isinstance(data["v"], bool):
            raise KeyExchangeError("unsupported wrapped key version")
        return cls(
            room_id=data["room"],
            sender_participant_id=data["from"],
            recipient_participant_id=data["to"],
            sender_id=data["sender_id"],
            generation=data["generation"],
            ratchet_step=data["ratchet_step"],
            cipher_suite=data["suite"],
            nonce=b64u_decode(data["nonce"], length=12, what="nonce"),
            ciphertext=b64u_decode(data["ct"], what="ct"),
            signature=b64u_decode(data["sig"], length=64, what="sig"),
        )


def wrap_sender_key(
    key: SenderKey,
    *,
    room_id: str,
    sender_identity: IdentityKeys,
    sender_participant_id: str,
    recipient: Member,
    _nonce: bytes | None = None,
) -> WrappedKey:
    """Encrypt ``key`` for ``recipient`` and sign the result with our Ed25519 key.

    ``_nonce`` exists only to reproduce the documented example; never pass it otherwise.
    """
    if not isinstance(key, SenderKey):
        raise TypeError("key must be a SenderKey")
    sender_x = sender_identity.x25519_public
    wrap_key = _wrap_key(
        sender_identity.agreement_key, recipient.card.x25519, sender_x, recipient.card.x25519
    )
    unsigned = WrappedKey(
        room_id,
        sender_participant_id,
        recipient.participant_id,
        key.sender_id,
        key.generation,
        key.ratchet_step,
        key.cipher_suite,
        nonce=os.urandom(12) if _nonce is None else _nonce,
        ciphertext=bytes(32),
        signature=bytes(64),
    )
    ciphertext = AESGCM(wrap_key).encrypt(unsigned.nonce, key.base_key, unsigned.aad())
    body = dataclasses.replace(unsigned, ciphertext=ciphertext)
    return dataclasses.replace(
        body, signature=sender_identity.signing_key.sign(body.signed_message())
    )


def unwrap_sender_key(
    blob: WrappedKey,
    *,
    room_id: str,
    recipient_identity: IdentityKeys,
    recipient_participant_id: str,
    sender: Member,
) -> SenderKey:
    """Check and decrypt a wrapped key from ``sender``; raise :class:`KeyExchangeError`.

    ``sender`` must come from the room roster (participant id, SFrame sender id and the
    identity card the security code covers), never from the blob itself.
    """
    if not isinstance(blob, WrappedKey):
        raise KeyExchangeError("not a WrappedKey")
    if blob.room_id != room_id:
        raise KeyExchangeError("wrapped key is for another room")
    if blob.recipient_participant_id != recipient_participant_id:
        raise KeyExchangeError("wrapped key is for another recipient")
    if blob.sender_participant_id != sender.participant_id:
        raise KeyExchangeError("wrapped key names another sender")
    if blob.sender_id != sender.sender_id:
        raise KeyExchangeError("wrapped key's SFrame sender id does not match the roster")
    try:
        Ed25519PublicKey.from_public_bytes(sender.card.ed25519).verify(
            blob.signature, blob.signed_message()
        )
    except (InvalidSignature, ValueError):
        raise KeyExchangeError("wrapped key signature does not verify") from None
    own_x = recipient_identity.x25519_public
    wrap_key = _wrap_key(
        recipient_identity.agreement_key, sender.card.x25519, sender.card.x25519, own_x
    )
    try:
        base_key = AESGCM(wrap_key).decrypt(blob.nonce, blob.ciphertext, blob.aad())
    except InvalidTag:
        raise KeyExchangeError(
            "wrapped key does not decrypt (wrong recipient key or altered)"
        ) from None
    try:
        return SenderKey(
            blob.sender_id, blob.generation, blob.ratchet_step, base_key, blob.cipher_suite
        )
    except SFrameConfigError as exc:
        raise KeyExchangeError(f"wrapped key content invalid: {exc}") from None


# --------------------------------------------------------------------------- security code


def commitment(room_id: str, card: IdentityCard, contribution: bytes) -> bytes:
    """SHA-256 commitment to (card, 32-byte random contribution) for a commit-then-reveal
    round before the security code is shown; see docs/security.md."""
    if not isinstance(contribution, bytes) or len(contribution) != 32:
        raise ValueError("contribution must be 32 bytes")
    return hashlib.sha256(
        canonical_encode(COMMIT_LABEL, room_id, card.fingerprint, contribution)
    ).digest()


def security_code(
    room_id: str,
    identity_cards: Iterable[IdentityCard],
    *,
    digits: int = 15,
    contributions: Iterable[bytes] = (),
) -> str:
    """Short decimal code over the room id and everyone's identity keys (order independent).

    ``digits`` is 12..60 and a multiple of 3 or 4; the digits are grouped in fours when
    possible, else threes (``"123 456 789 012 345"``).  ``contributions`` are optional
    per-member 32-byte random values revealed after a commitment round.
    """
    if not 12 <= digits <= 60 or (digits % 4 and digits % 3):
        raise ValueError("digits must be 12..60 and a multiple of 3 or 4")
    _check_id("room_id", room_id)
    prints = sorted(card.fingerprint for card in identity_cards)
    if not prints:
        raise ValueError("a security code needs at least one identity card")
    extras = sorted(contributions)
    if any(not isinstance(c, bytes) or len(c) != 32 for c in extras):
        raise ValueError("contributions must be 32 bytes each")
    digest = hashlib.sha256(
        canonical_encode(CODE_LABEL, room_id, len(prints), *prints, len(extras), *extras)
    ).digest()
    number = str(int.from_bytes(digest, "big") % 10**digits).zfill(digits)
    group = 4 if digits % 4 == 0 else 3
    return " ".join(number[i : i + group] for i in range(0, digits, group))


# --------------------------------------------------------------------------- lifecycle


class SenderKeyManager:
    """Pure state machine for one client's keys in one room (no I/O).

    Owns our :class:`SFrameSender` and the :class:`SFrameReceiver` for everyone else.
    Every method that changes keys returns the :class:`WrappedKey` blobs to send via the
    server; ``accept`` consumes blobs received from others.

    * ``start(members)``: our initial key for everyone already present.
    * ``member_joined(m)``: ratchet our key one step (the newcomer cannot decrypt earlier
      frames); wrap the ratcheted key for the newcomer only, since existing members derive
      the step themselves. Every ``max_ratchet_ahead`` steps the key is re-sent to all, so
      a silent sender never gets further ahead than receivers can derive.
    * ``member_left(pid)``: drop the member's keys; new random base key, generation + 1,
      wrapped only for the remaining members. We switch immediately, so the departed
      member cannot decrypt anything sent after this call; remaining members lose audio
      from us until our blob reaches them (one signaling round trip).
    * ``set_audience(pids)``: who of the members hears us now (a group meeting's side room:
      just the other side; the group: everyone not in a side room). Anyone no longer in it
      is handled like a leave (their keys dropped, a new generation for the new audience
      only); anyone back in it like a join (a ratchet step, wrapped for them), so they can
      decrypt nothing we sent while they were away. ``None`` (the default) is everyone.
    """

    def __init__(
        self,
        room_id: str,
        identity: IdentityKeys,
        participant_id: str,
        sender_id: int,
        *,
        cipher_suite: int = AES_128_GCM_SHA256_128,
        receiver: SFrameReceiver | None = None,
    ) -> None:
        _check_id("room_id", room_id)
        _check_id("participant_id", participant_id)
        _check_uint("sender_id", sender_id, MAX_SENDER_ID)
        get_cipher_suite(cipher_suite)
        self.room_id = room_id
        self.identity = identity
        self.participant_id = participant_id
        self.sender_id = sender_id
        self.sender = SFrameSender.generate(sender_id, cipher_suite)
        self.receiver = receiver if receiver is not None else SFrameReceiver(cipher_suite)
        self._members: dict[str, Member] = {}
        self._audience: set[str] | None = None  # None: every member

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(self._members.values())

    @property
    def audience(self) -> tuple[Member, ...]:
        """The members our key is given to now (see :meth:`set_audience`)."""
        if self._audience is None:
            return self.members
        return tuple(m for pid, m in self._members.items() if pid in self._audience)

    def set_audience(self, participant_ids: Iterable[str] | None) -> list[WrappedKey]:
        """Give our key only to these members from now on (unknown ids are ignored)."""
        old = {m.participant_id for m in self.audience}
        new = (set(self._members) if participant_ids is None
               else set(participant_ids) & set(self._members))
        self._audience = None if participant_ids is None else new
        gone, back = old - new, new - old
        for pid in gone:  # we hold none of their keys while they are elsewhere
            self.receiver.remove_sender(self._members[pid].sender_id)
        if gone:
            self.sender.new_generation()
            return self._wrap_for(self.audience)
        if back:
            key = self.sender.ratchet()
            if key.ratchet_step % max(self.receiver.max_ratchet_ahead, 1) == 0:
                return self._wrap_for(self.audience)
            return self._wrap_for(m for m in self.audience if m.participant_id in back)
        return []

    def _wrap_for(self, members: Iterable[Member]) -> list[WrappedKey]:
        key = self.sender.key
        return [
            wrap_sender_key(
                key,
                room_id=self.room_id,
                sender_identity=self.identity,
                sender_participant_id=self.participant_id,
                recipient=m,
            )
            for m in members
        ]

    def _add(self, member: Member) -> None:
        if member.participant_id == self.participant_id:
            raise KeyExchangeError("cannot add ourselves as a member")
        if member.sender_id == self.sender_id or any(
            m.sender_id == member.sender_id and m.participant_id != member.participant_id
            for m in self._members.values()
        ):
            raise KeyExchangeError(f"SFrame sender id {member.sender_id} is already in use")
        if member.participant_id in self._members:
            raise KeyExchangeError(f"participant {member.participant_id} is already a member")
        self._members[member.participant_id] = member

    def start(self, members: Iterable[Member]) -> list[WrappedKey]:
        """Record the members already in the room and give each of them our key."""
        new = [m for m in members if m.participant_id != self.participant_id]
        for m in new:
            self._add(m)
        return self._wrap_for(new)

    def member_joined(self, member: Member) -> list[WrappedKey]:
        if self._members.get(member.participant_id) == member:
            return []  # duplicate announcement
        self._add(member)
        if self._audience is not None:
            return []  # not ours to key until set_audience says they hear us
        key = self.sender.ratchet()
        if key.ratchet_step % max(self.receiver.max_ratchet_ahead, 1) == 0:
            return self._wrap_for(self._members.values())
        return self._wrap_for([member])

    def member_left(self, participant_id: str) -> list[WrappedKey]:
        heard = participant_id in {m.participant_id for m in self.audience}
        member = self._members.pop(participant_id, None)
        if member is None:
            return []
        self.receiver.remove_sender(member.sender_id)
        if self._audience is not None:
            self._audience.discard(participant_id)
            if not heard:
                return []  # elsewhere (a side room): they do not hold our current key
        self.sender.new_generation()
        return self._wrap_for(self.audience)

    def accept(self, blob: WrappedKey) -> SenderKey:
        """Unwrap a key sent to us and install it in our receiver."""
        sender = self._members.get(blob.sender_participant_id)
        if sender is None:
            raise KeyExchangeError(
                f"wrapped key from unknown participant {blob.sender_participant_id}"
            )
        key = unwrap_sender_key(
            blob,
            room_id=self.room_id,
            recipient_identity=self.identity,
            recipient_participant_id=self.participant_id,
            sender=sender,
        )
        try:
            self.receiver.add_key(key)
        except SFrameConfigError as exc:
            raise KeyExchangeError(str(exc)) from None
        return key

    def security_code(self, *, digits: int = 15) -> str:
        cards = [self.identity.card()] + [m.card for m in self._members.values()]
        return security_code(self.room_id, cards, digits=digits)
