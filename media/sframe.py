"""SFrame (RFC 9605) end-to-end media frame encryption.

Leaf module: only the standard library and ``cryptography``.

What is implemented
-------------------
* The SFrame header codec of RFC 9605 §4.3 (config byte ``X|K|Y|C`` followed by the
  variable-length KID and CTR).  Parsing is strict: truncated input and non-minimal
  encodings raise :class:`SFrameHeaderError`.
* Key/salt derivation of §4.4.2, the nonce of §4.4.3 and AAD = header + metadata.
* Cipher suites 0x0001..0x0005 (§4.5).  Haven uses ``AES_128_GCM_SHA256_128`` (0x0004).
  The AES-CTR+HMAC suites (§4.5.1) are included because they are a few lines and let us
  check every published vector.
* The "Sender Keys" scheme of §5.1 with Haven's KID layout (below) and the §5.1 ratchet::

      base_key[i+1] = HKDF-Expand(HKDF-Extract("", base_key[i]), "SFrame 1.0 Ratchet", Nh)

Haven KID layout (a 24-bit value; the header carries it in 1..3 bytes)::

      bit 23 .......... 12 | 11 ........ 5 | 4 ......... 0
      SFrame sender id     | generation    | ratchet step
      (12 bits, 0..4095)   | (low 7 bits)  | (low 5 bits)

      KID = (sender_id << 12) | ((generation % 128) << 5) | (ratchet_step % 32)

The sender id makes KIDs of different senders disjoint, so one :class:`SFrameReceiver`
serves every sender of a room.  Only the low bits of generation and step travel in the KID
(RFC 9605 §5.1 "For compactness ..."); receivers track the full values.  A receiver derives
ratchet steps forward by itself up to ``max_ratchet_ahead`` (16) steps past the newest step it
holds; that leaves half of the 32-step space unambiguous for old, reordered frames.

Counters: a :class:`SFrameSender` uses one 64-bit CTR that increases monotonically across
ratchet steps and generations, so no (key, nonce) pair can repeat even if two KIDs ever
collided.  Encrypting after CTR 2**64-1 has been used raises :class:`CounterExhaustedError`.

Empty frames (Opus DTX) are passed through untouched in both directions.

Objects are not thread-safe; use them from one thread / event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AES_128_CTR_HMAC_SHA256_32",
    "AES_128_CTR_HMAC_SHA256_64",
    "AES_128_CTR_HMAC_SHA256_80",
    "AES_128_GCM_SHA256_128",
    "AES_256_GCM_SHA512_128",
    "CIPHER_SUITES",
    "GENERATION_BITS",
    "MAX_COUNTER",
    "MAX_GENERATION",
    "MAX_KID",
    "MAX_RATCHET_STEP",
    "MAX_SENDER_ID",
    "RATCHET_BITS",
    "SENDER_ID_BITS",
    "AuthenticationError",
    "CipherSuite",
    "CounterExhaustedError",
    "DecryptedFrame",
    "MalformedFrameError",
    "ReplayError",
    "SFrameConfigError",
    "SFrameDecryptError",
    "SFrameError",
    "SFrameHeader",
    "SFrameHeaderError",
    "SFrameKeyContext",
    "SFrameReceiver",
    "SFrameSender",
    "SenderKey",
    "UnexpectedSenderError",
    "UnknownKeyError",
    "decode_header",
    "derive_key_salt",
    "encode_header",
    "get_cipher_suite",
    "make_kid",
    "ratchet_base_key",
    "split_kid",
]

# --------------------------------------------------------------------------- errors


class SFrameError(Exception):
    """Base class of every error raised by this module."""


class SFrameConfigError(SFrameError, ValueError):
    """Invalid parameter: unknown cipher suite, key of the wrong size, id out of range."""


class CounterExhaustedError(SFrameError):
    """The sender's 64-bit counter is used up; encrypting again would reuse a nonce."""


class SFrameHeaderError(SFrameError):
    """Truncated or invalid SFrame header encoding."""


class SFrameDecryptError(SFrameError):
    """An SFrame ciphertext was rejected. Subclasses say why."""


class MalformedFrameError(SFrameDecryptError, SFrameHeaderError):
    """The ciphertext is truncated or its header is invalid."""


class UnknownKeyError(SFrameDecryptError):
    """No key is held (any more) for the frame's KID."""


class ReplayError(SFrameDecryptError):
    """The counter was already accepted for this KID, or is older than the replay window."""


class AuthenticationError(SFrameDecryptError):
    """The AEAD tag did not verify (wrong key, tampered header/metadata/ciphertext)."""


class UnexpectedSenderError(SFrameDecryptError):
    """The frame's KID names a different sender than the caller expected."""


# --------------------------------------------------------------------------- HKDF


def _hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869: an absent salt is HashLen zero bytes; HMAC pads keys with zeros, so an
    # empty key gives the identical result.
    return hmac.new(salt, ikm, hash_name).digest()


def _hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


# --------------------------------------------------------------------------- cipher suites


class _AesCtrHmac:
    """RFC 9605 §4.5.1 AEAD: AES-CTR then HMAC over lengths, nonce, AAD and ciphertext."""

    __slots__ = ("_enc_key", "_auth_key", "_hash", "_nt")

    def __init__(self, key: bytes, nka: int, hash_name: str, nt: int) -> None:
        self._enc_key = key[:nka]
        self._auth_key = key[nka:]
        self._hash = hash_name
        self._nt = nt

    def _tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        auth_data = (
            len(aad).to_bytes(8, "big")
            + len(ct).to_bytes(8, "big")
            + self._nt.to_bytes(8, "big")
            + nonce
            + aad
            + ct
        )
        return hmac.new(self._auth_key, auth_data, self._hash).digest()[: self._nt]

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        cipher = Cipher(algorithms.AES(self._enc_key), modes.CTR(nonce + b"\x00\x00\x00\x00"))
        enc = cipher.encryptor()
        return enc.update(data) + enc.finalize()

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        ct = self._ctr(nonce, data)
        return ct + self._tag(nonce, associated_data, ct)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        if len(data) < self._nt:
            raise InvalidTag()
        inner, tag = data[: -self._nt], data[-self._nt :]
        if not hmac.compare_digest(tag, self._tag(nonce, associated_data, inner)):
            raise InvalidTag()
        return self._ctr(nonce, inner)


@dataclass(frozen=True)
class CipherSuite:
    """Constants of one SFrame cipher suite (RFC 9605 Table 1)."""

    id: int
    name: str
    hash_name: str  # hashlib name of the HKDF / HMAC hash
    nh: int  # hash output size
    nk: int  # AEAD key size
    nn: int  # nonce size
    nt: int  # tag size
    nka: int | None = None  # AES key size inside the CTR+HMAC AEAD; None for AES-GCM

    def __post_init__(self) -> None:
        if not 0 < self.id <= 0xFFFF:
            raise SFrameConfigError(f"cipher suite id {self.id} out of range")
        try:
            digest = hashlib.new(self.hash_name).digest_size
        except ValueError as exc:
            raise SFrameConfigError(f"unknown hash {self.hash_name!r}") from exc
        if digest != self.nh:
            raise SFrameConfigError("nh does not match the hash output size")
        if self.nn != 12:
            raise SFrameConfigError("SFrame nonces are 12 bytes")
        if self.nka is None:
            if self.nk not in (16, 32) or self.nt != 16:
                raise SFrameConfigError("AES-GCM suites need a 16/32-byte key and 16-byte tag")
        elif (
            self.nka not in (16, 32) or self.nk != self.nka + self.nh or not 4 <= self.nt <= self.nh
        ):
            raise SFrameConfigError("inconsistent AES-CTR+HMAC suite constants")

    def make_aead(self, key: bytes) -> AESGCM | _AesCtrHmac:
        """Return an object with ``encrypt(nonce, data, aad)`` / ``decrypt(nonce, data, aad)``."""
        if len(key) != self.nk:
            raise SFrameConfigError(f"{self.name} needs a {self.nk}-byte key")
        if self.nka is None:
            return AESGCM(key)
        return _AesCtrHmac(key, self.nka, self.hash_name, self.nt)


AES_128_CTR_HMAC_SHA256_80 = 0x0001
AES_128_CTR_HMAC_SHA256_64 = 0x0002
AES_128_CTR_HMAC_SHA256_32 = 0x0003
AES_128_GCM_SHA256_128 = 0x0004
AES_256_GCM_SHA512_128 = 0x0005

CIPHER_SUITES: dict[int, CipherSuite] = {
    s.id: s
    for s in (
        CipherSuite(0x0001, "AES_128_CTR_HMAC_SHA256_80", "sha256", 32, 48, 12, 10, 16),
        CipherSuite(0x0002, "AES_128_CTR_HMAC_SHA256_64", "sha256", 32, 48, 12, 8, 16),
        CipherSuite(0x0003, "AES_128_CTR_HMAC_SHA256_32", "sha256", 32, 48, 12, 4, 16),
        CipherSuite(0x0004, "AES_128_GCM_SHA256_128", "sha256", 32, 16, 12, 16),
        CipherSuite(0x0005, "AES_256_GCM_SHA512_128", "sha512", 64, 32, 12, 16),
    )
}


def get_cipher_suite(suite: int | CipherSuite) -> CipherSuite:
    if isinstance(suite, CipherSuite):
        return suite
    try:
        return CIPHER_SUITES[suite]
    except (KeyError, TypeError):
        raise SFrameConfigError(f"unsupported SFrame cipher suite {suite!r}") from None


# --------------------------------------------------------------------------- header

MAX_KID = MAX_COUNTER = (1 << 64) - 1


def encode_header(kid: int, ctr: int) -> bytes:
    """Encode an SFrame header (RFC 9605 §4.3) with minimal-length KID and CTR."""
    if not (0 <= kid <= MAX_KID and 0 <= ctr <= MAX_COUNTER):
        raise SFrameConfigError("KID and CTR must be in 0..2**64-1")
    if kid < 8:
        config = kid << 4
        kid_bytes = b""
    else:
        n = (kid.bit_length() + 7) >> 3
        config = 0x80 | ((n - 1) << 4)
        kid_bytes = kid.to_bytes(n, "big")
    if ctr < 8:
        config |= ctr
        ctr_bytes = b""
    else:
        n = (ctr.bit_length() + 7) >> 3
        config |= 0x08 | (n - 1)
        ctr_bytes = ctr.to_bytes(n, "big")
    return bytes((config,)) + kid_bytes + ctr_bytes


def _parse_header(data: bytes) -> tuple[int, int, int]:
    """Return (kid, ctr, header_length); raise SFrameHeaderError on bad input."""
    if not data:
        raise SFrameHeaderError("empty input: no SFrame header")
    config = data[0]
    pos = 1
    if config & 0x80:
        n = ((config >> 4) & 0x07) + 1
        end = pos + n
        if len(data) < end:
            raise SFrameHeaderError(f"truncated header: KID needs {n} bytes")
        if n > 1 and data[pos] == 0:
            raise SFrameHeaderError("non-minimal KID encoding (leading zero byte)")
        kid = int.from_bytes(data[pos:end], "big")
        if kid < 8:
            raise SFrameHeaderError("non-minimal KID encoding (value < 8 in extended form)")
        pos = end
    else:
        kid = (config >> 4) & 0x07
    if config & 0x08:
        n = (config & 0x07) + 1
        end = pos + n
        if len(data) < end:
            raise SFrameHeaderError(f"truncated header: CTR needs {n} bytes")
        if n > 1 and data[pos] == 0:
            raise SFrameHeaderError("non-minimal CTR encoding (leading zero byte)")
        ctr = int.from_bytes(data[pos:end], "big")
        if ctr < 8:
            raise SFrameHeaderError("non-minimal CTR encoding (value < 8 in extended form)")
        pos = end
    else:
        ctr = config & 0x07
    return kid, ctr, pos


@dataclass(frozen=True)
class SFrameHeader:
    """A decoded SFrame header."""

    kid: int
    ctr: int

    def __post_init__(self) -> None:
        for name in ("kid", "ctr"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_KID:
                raise SFrameConfigError(f"{name} must be an int in 0..2**64-1")

    def encode(self) -> bytes:
        return encode_header(self.kid, self.ctr)


def decode_header(data: bytes) -> tuple[SFrameHeader, int]:
    """Parse the header at the start of ``data``; return it and its length in bytes."""
    kid, ctr, length = _parse_header(bytes(data))
    return SFrameHeader(kid, ctr), length


# --------------------------------------------------------------------------- key schedule


def derive_key_salt(suite: int | CipherSuite, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """RFC 9605 §4.4.2: (sframe_key, sframe_salt) for ``base_key`` under ``kid``."""
    cs = get_cipher_suite(suite)
    if not 0 <= kid <= MAX_KID:
        raise SFrameConfigError("KID must be in 0..2**64-1")
    secret = _hkdf_extract(cs.hash_name, b"", base_key)
    tail = kid.to_bytes(8, "big") + cs.id.to_bytes(2, "big")
    key = _hkdf_expand(cs.hash_name, secret, b"SFrame 1.0 Secret key " + tail, cs.nk)
    salt = _hkdf_expand(cs.hash_name, secret, b"SFrame 1.0 Secret salt " + tail, cs.nn)
    return key, salt


def ratchet_base_key(suite: int | CipherSuite, base_key: bytes) -> bytes:
    """RFC 9605 §5.1: the next base key (Nh bytes) in the sender's ratchet."""
    cs = get_cipher_suite(suite)
    secret = _hkdf_extract(cs.hash_name, b"", base_key)
    return _hkdf_expand(cs.hash_name, secret, b"SFrame 1.0 Ratchet", cs.nh)


class SFrameKeyContext:
    """The derived key, salt and cached AEAD object for one (KID, base_key).

    This is the low-level primitive of RFC 9605 §4.4; it does no counter management
    or replay protection. :class:`SFrameSender` / :class:`SFrameReceiver` build on it.
    """

    __slots__ = ("kid", "suite", "sframe_key", "sframe_salt", "_salt_int", "_aead", "_nt")

    def __init__(self, suite: int | CipherSuite, kid: int, base_key: bytes) -> None:
        self.suite = get_cipher_suite(suite)
        self.kid = kid
        self.sframe_key, self.sframe_salt = derive_key_salt(self.suite, kid, base_key)
        self._salt_int = int.from_bytes(self.sframe_salt, "big")
        self._aead = self.suite.make_aead(self.sframe_key)
        self._nt = self.suite.nt

    def nonce(self, ctr: int) -> bytes:
        return (self._salt_int ^ ctr).to_bytes(12, "big")

    def encrypt(self, ctr: int, plaintext: bytes, metadata: bytes = b"") -> bytes:
        header = encode_header(self.kid, ctr)
        nonce = (self._salt_int ^ ctr).to_bytes(12, "big")
        return header + self._aead.encrypt(nonce, plaintext, header + metadata)

    def open(self, header: bytes, ctr: int, ciphertext: bytes, metadata: bytes = b"") -> bytes:
        """Decrypt a body whose header is already parsed. Raises InvalidTag."""
        nonce = (self._salt_int ^ ctr).to_bytes(12, "big")
        return self._aead.decrypt(nonce, ciphertext, header + metadata)

    def decrypt(self, data: bytes, metadata: bytes = b"") -> bytes:
        """Decrypt a whole SFrame ciphertext made with this context's KID."""
        try:
            kid, ctr, hlen = _parse_header(data)
        except SFrameHeaderError as exc:
            raise MalformedFrameError(str(exc)) from None
        if kid != self.kid:
            raise UnknownKeyError(f"frame has KID {kid}, context holds KID {self.kid}")
        if len(data) - hlen < self._nt:
            raise MalformedFrameError("ciphertext shorter than the authentication tag")
        try:
            return self.open(data[:hlen], ctr, data[hlen:], metadata)
        except InvalidTag:
            raise AuthenticationError("authentication tag mismatch") from None


# --------------------------------------------------------------------------- Haven KID layout

SENDER_ID_BITS = 12
GENERATION_BITS = 7
RATCHET_BITS = 5
MAX_SENDER_ID = (1 << SENDER_ID_BITS) - 1
MAX_GENERATION = MAX_RATCHET_STEP = (1 << 32) - 1  # full values, tracked outside the KID
_GEN_MASK = (1 << GENERATION_BITS) - 1
_STEP_MASK = (1 << RATCHET_BITS) - 1
_HAVEN_KID_BITS = SENDER_ID_BITS + GENERATION_BITS + RATCHET_BITS


def make_kid(sender_id: int, generation: int, ratchet_step: int) -> int:
    """Haven KID: sender id (12 bits) | generation mod 128 (7 bits) | step mod 32 (5 bits)."""
    if not 0 <= sender_id <= MAX_SENDER_ID:
        raise SFrameConfigError(f"sender id must be in 0..{MAX_SENDER_ID}")
    if generation < 0 or ratchet_step < 0:
        raise SFrameConfigError("generation and ratchet step are non-negative")
    return (
        (sender_id << (GENERATION_BITS + RATCHET_BITS))
        | ((generation & _GEN_MASK) << RATCHET_BITS)
        | (ratchet_step & _STEP_MASK)
    )


def split_kid(kid: int) -> tuple[int, int, int]:
    """Inverse of :func:`make_kid`: (sender_id, generation mod 128, step mod 32)."""
    if not 0 <= kid < (1 << _HAVEN_KID_BITS):
        raise SFrameConfigError("KID is outside Haven's 24-bit layout")
    return (
        kid >> (GENERATION_BITS + RATCHET_BITS),
        (kid >> RATCHET_BITS) & _GEN_MASK,
        kid & _STEP_MASK,
    )


def _check_int(name: str, value: object, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise SFrameConfigError(f"{name} must be an int in 0..{maximum}")


@dataclass(frozen=True)
class SenderKey:
    """One sender's base key at a given (generation, ratchet step)."""

    sender_id: int
    generation: int
    ratchet_step: int
    base_key: bytes = field(repr=False)
    cipher_suite: int = AES_128_GCM_SHA256_128

    def __post_init__(self) -> None:
        _check_int("sender_id", self.sender_id, MAX_SENDER_ID)
        _check_int("generation", self.generation, MAX_GENERATION)
        _check_int("ratchet_step", self.ratchet_step, MAX_RATCHET_STEP)
        cs = get_cipher_suite(self.cipher_suite)
        if not isinstance(self.base_key, bytes):
            raise SFrameConfigError("base_key must be bytes")
        # A fresh key has Nk bytes (16 for AES-128 suites), a ratcheted one Nh bytes.
        if not min(cs.nk, cs.nh, 16) <= len(self.base_key) <= max(cs.nk, cs.nh):
            raise SFrameConfigError(f"base_key of {len(self.base_key)} bytes unfit for {cs.name}")
        if cs.nka is None and len(self.base_key) < cs.nk:
            raise SFrameConfigError(f"{cs.name} base keys are at least {cs.nk} bytes")

    @classmethod
    def generate(
        cls, sender_id: int, generation: int = 0, cipher_suite: int = AES_128_GCM_SHA256_128
    ) -> SenderKey:
        """A fresh random base key (Nk bytes from the OS CSPRNG) at ratchet step 0."""
        cs = get_cipher_suite(cipher_suite)
        return cls(sender_id, generation, 0, os.urandom(cs.nk), cs.id)

    @property
    def kid(self) -> int:
        return make_kid(self.sender_id, self.generation, self.ratchet_step)

    def ratcheted(self, steps: int = 1) -> SenderKey:
        """The key ``steps`` ratchet steps later (one-way: earlier keys cannot be derived)."""
        if steps < 0:
            raise SFrameConfigError("the ratchet only moves forward")
        key = self.base_key
        for _ in range(steps):
            key = ratchet_base_key(self.cipher_suite, key)
        return SenderKey(
            self.sender_id, self.generation, self.ratchet_step + steps, key, self.cipher_suite
        )

    def context(self) -> SFrameKeyContext:
        return SFrameKeyContext(self.cipher_suite, self.kid, self.base_key)


# --------------------------------------------------------------------------- sender


class SFrameSender:
    """Encrypts one sender's frames; owns the sender's key and its 64-bit counter."""

    def __init__(self, key: SenderKey, *, next_counter: int = 0) -> None:
        if not isinstance(key, SenderKey):
            raise SFrameConfigError("key must be a SenderKey")
        _check_int("next_counter", next_counter, MAX_COUNTER + 1)
        self._ctr = next_counter
        self._install(key)

    @classmethod
    def generate(cls, sender_id: int, cipher_suite: int = AES_128_GCM_SHA256_128) -> SFrameSender:
        return cls(SenderKey.generate(sender_id, 0, cipher_suite))

    def _install(self, key: SenderKey) -> None:
        self._key = key
        self._context = key.context()
        self._aead = self._context._aead
        self._salt_int = self._context._salt_int
        kid = key.kid
        # Cache the KID half of the header; only the CTR part changes per frame.
        if kid < 8:
            self._config = kid << 4
            self._kid_bytes = b""
        else:
            n = (kid.bit_length() + 7) >> 3
            self._config = 0x80 | ((n - 1) << 4)
            self._kid_bytes = kid.to_bytes(n, "big")

    @property
    def key(self) -> SenderKey:
        return self._key

    @property
    def kid(self) -> int:
        return self._key.kid

    @property
    def next_counter(self) -> int:
        return self._ctr

    def encrypt(self, frame: bytes, metadata: bytes = b"") -> bytes:
        if not frame:
            return b""  # DTX / empty frames pass untouched
        ctr = self._ctr
        if ctr > MAX_COUNTER:
            raise CounterExhaustedError("64-bit SFrame counter exhausted; install a new key")
        self._ctr = ctr + 1  # consume the counter before use (RFC 9605 §9.1)
        if ctr < 8:
            header = bytes((self._config | ctr,)) + self._kid_bytes
        else:
            n = (ctr.bit_length() + 7) >> 3
            header = (
                bytes((self._config | 0x08 | (n - 1),)) + self._kid_bytes + ctr.to_bytes(n, "big")
            )
        nonce = (self._salt_int ^ ctr).to_bytes(12, "big")
        return header + self._aead.encrypt(nonce, frame, header + metadata)

    def ratchet(self) -> SenderKey:
        """Advance one ratchet step (RFC 9605 §5.1); returns the new key."""
        self._install(self._key.ratcheted())
        return self._key

    def new_generation(self, base_key: bytes | None = None) -> SenderKey:
        """Switch to a new base key (random unless given), generation + 1, step 0."""
        cs = get_cipher_suite(self._key.cipher_suite)
        key = SenderKey(
            self._key.sender_id,
            self._key.generation + 1,
            0,
            os.urandom(cs.nk) if base_key is None else base_key,
            cs.id,
        )
        self._install(key)
        return key


# --------------------------------------------------------------------------- receiver


@dataclass(frozen=True)
class DecryptedFrame:
    sender_id: int
    generation: int
    ratchet_step: int
    counter: int
    payload: bytes


class _RecvKey:
    __slots__ = (
        "kid", "sender_id", "generation", "step", "context",
        "expires_at", "max_ctr", "seen",
    )  # fmt: skip

    def __init__(self, key: SenderKey) -> None:
        self.kid = key.kid
        self.sender_id = key.sender_id
        self.generation = key.generation
        self.step = key.ratchet_step
        self.context = key.context()
        self.expires_at: float | None = None
        self.max_ctr = -1
        self.seen = 0  # bit i set <=> counter (max_ctr - i) was accepted


class _SenderState:
    __slots__ = ("latest",)

    def __init__(self, latest: SenderKey) -> None:
        self.latest = latest  # newest (generation, step) key held for this sender


class SFrameReceiver:
    """Key store and decryptor for the frames of every remote sender in a room.

    * keys are installed with :meth:`add_key` (from the key exchange);
    * a newer ratchet step of the current generation is derived on demand, at most
      ``max_ratchet_ahead`` steps ahead, and only kept if the frame authenticates;
    * superseded keys (older steps, the previous generation) keep working for
      ``grace_period`` seconds of ``clock`` time, then are forgotten;
    * per KID, a sliding window of ``replay_window`` counters rejects replays.
    """

    def __init__(
        self,
        cipher_suite: int = AES_128_GCM_SHA256_128,
        *,
        grace_period: float = 5.0,
        replay_window: int = 128,
        max_ratchet_ahead: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._suite = get_cipher_suite(cipher_suite)
        if grace_period < 0:
            raise SFrameConfigError("grace_period must be >= 0")
        if not 1 <= replay_window <= 1 << 16:
            raise SFrameConfigError("replay_window must be in 1..65536")
        if not 0 <= max_ratchet_ahead < (1 << (RATCHET_BITS - 1)) + 1:
            raise SFrameConfigError(f"max_ratchet_ahead must be in 0..{1 << (RATCHET_BITS - 1)}")
        self.grace_period = grace_period
        self.replay_window = replay_window
        self.max_ratchet_ahead = max_ratchet_ahead
        self._clock = clock
        self._window_mask = (1 << replay_window) - 1
        self._keys: dict[int, _RecvKey] = {}
        self._senders: dict[int, _SenderState] = {}
        self.frames_ok = 0
        self.frames_failed = 0

    # -- key management ------------------------------------------------------------

    def add_key(self, key: SenderKey) -> bool:
        """Install a sender key; return False if it is older than what is held.

        A newer generation moves all of the sender's current keys into the grace period;
        a newer step of the current generation does the same for older steps.
        """
        if key.cipher_suite != self._suite.id:
            raise SFrameConfigError("key cipher suite differs from the receiver's")
        now = self._clock()
        state = self._senders.get(key.sender_id)
        if state is not None:
            latest = state.latest
            if (key.generation, key.ratchet_step) <= (latest.generation, latest.ratchet_step):
                return False
            self._retire_sender_keys(key.sender_id, now)
        self._install(key)
        self.prune(now)
        return True

    def _install(self, key: SenderKey, entry: _RecvKey | None = None) -> None:
        self._keys[key.kid] = entry if entry is not None else _RecvKey(key)
        state = self._senders.get(key.sender_id)
        if state is None:
            self._senders[key.sender_id] = _SenderState(key)
        else:
            state.latest = key

    def _retire_sender_keys(self, sender_id: int, now: float) -> None:
        deadline = now + self.grace_period
        for entry in self._keys.values():
            if entry.sender_id == sender_id and (
                entry.expires_at is None or entry.expires_at > deadline
            ):
                entry.expires_at = deadline

    def remove_sender(self, sender_id: int) -> None:
        """Forget every key of ``sender_id`` immediately (e.g. the member left)."""
        self._senders.pop(sender_id, None)
        for kid in [k for k, e in self._keys.items() if e.sender_id == sender_id]:
            del self._keys[kid]

    def prune(self, now: float | None = None) -> None:
        """Drop keys whose grace period has ended."""
        now = self._clock() if now is None else now
        for kid in [
            k for k, e in self._keys.items() if e.expires_at is not None and e.expires_at <= now
        ]:
            del self._keys[kid]

    def held_kids(self) -> set[int]:
        return set(self._keys)

    def latest_key(self, sender_id: int) -> SenderKey | None:
        state = self._senders.get(sender_id)
        return None if state is None else state.latest

    # -- decryption ------------------------------------------------------------------

    def decrypt(
        self, data: bytes, metadata: bytes = b"", *, expected_sender: int | None = None
    ) -> bytes:
        """Decrypt one SFrame ciphertext; raise :class:`SFrameDecryptError` on failure."""
        if not data:
            return b""
        return self.decrypt_frame(data, metadata, expected_sender=expected_sender).payload

    def decrypt_frame(
        self, data: bytes, metadata: bytes = b"", *, expected_sender: int | None = None
    ) -> DecryptedFrame:
        try:
            return self._decrypt(data, metadata, expected_sender)
        except SFrameDecryptError:
            self.frames_failed += 1
            raise

    def _decrypt(self, data: bytes, metadata: bytes, expected_sender: int | None) -> DecryptedFrame:
        if not data:
            raise MalformedFrameError("empty input")
        try:
            kid, ctr, hlen = _parse_header(data)
        except SFrameHeaderError as exc:
            raise MalformedFrameError(str(exc)) from None
        if len(data) - hlen < self._suite.nt:
            raise MalformedFrameError("ciphertext shorter than the authentication tag")
        if (
            expected_sender is not None
            and kid >> (GENERATION_BITS + RATCHET_BITS) != expected_sender
        ):
            raise UnexpectedSenderError(f"KID {kid} is not from sender {expected_sender}")

        entry = self._keys.get(kid)
        pending: SenderKey | None = None
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self._clock():
            del self._keys[kid]
            entry = None
        if entry is None:
            pending = self._derive_ahead(kid)
            if pending is None:
                raise UnknownKeyError(f"no key for KID {kid}")
            entry = _RecvKey(pending)

        # Replay check before spending time on the AEAD.
        max_ctr = entry.max_ctr
        if ctr <= max_ctr:
            age = max_ctr - ctr
            if age >= self.replay_window:
                raise ReplayError(f"counter {ctr} is older than the replay window")
            if (entry.seen >> age) & 1:
                raise ReplayError(f"counter {ctr} already received")

        try:
            payload = entry.context.open(data[:hlen], ctr, data[hlen:], metadata)
        except InvalidTag:
            raise AuthenticationError("authentication tag mismatch") from None

        if ctr > max_ctr:
            shift = ctr - max_ctr
            entry.seen = (
                ((entry.seen << shift) | 1) & self._window_mask if shift < self.replay_window else 1
            )
            entry.max_ctr = ctr
        else:
            entry.seen |= 1 << (max_ctr - ctr)
        if pending is not None:
            # The frame authenticated under the derived key: commit the ratchet.
            now = self._clock()
            self._retire_sender_keys(pending.sender_id, now)
            self._install(pending, entry)
            self.prune(now)
        self.frames_ok += 1
        return DecryptedFrame(entry.sender_id, entry.generation, entry.step, ctr, payload)

    def _derive_ahead(self, kid: int) -> SenderKey | None:
        if kid >> _HAVEN_KID_BITS:
            return None
        sender_id, gen_low, step_low = split_kid(kid)
        state = self._senders.get(sender_id)
        if state is None:
            return None
        latest = state.latest
        if latest.generation & _GEN_MASK != gen_low:
            return None
        delta = (step_low - latest.ratchet_step) & _STEP_MASK
        if delta == 0 or delta > self.max_ratchet_ahead:
            return None
        if latest.ratchet_step + delta > MAX_RATCHET_STEP:
            return None
        return latest.ratcheted(delta)
