"""Envelope encryption of clinical text at rest.

Key hierarchy::

    master key (key file, outside the database; MasterKeyring, id "mk-…")
      └─ wraps  patient key (one per patient, 32 random bytes, id "pk-…", table patient_keys)
           └─ wraps  data key (fresh 32 random bytes for every sealed field of every record)
                └─ encrypts  the field's plaintext

Every layer is AES-256-GCM with a random 96-bit nonce. The associated data binds each
ciphertext to where it belongs, so a blob copied to another row, field or patient fails to
open, as does any flipped byte:

* patient key wrap:  canon("haven/patient-key/v1", patient_id, patient_key_id, master_key_id)
* data key wrap:     canon("haven/sealed/v1", "data-key", table, row_id, field, patient_key_id)
* field ciphertext:  canon("haven/sealed/v1", "content",  table, row_id, field, patient_key_id)

``canon`` is a length-prefixed encoding (4-byte big-endian length, then UTF-8 bytes, per
part), so no two different tuples encode the same way.

Sealed blob layout (stored as a BLOB column)::

    b"HVS1" | u8 len(pk_id) | pk_id (ASCII) | dk_nonce (12) | wrapped_dk (48) | nonce (12) | ct+tag

Rotating the master key re-wraps patient keys only (therapy.rotation); field ciphertext is
never touched. Crypto-shredding a patient destroys their wrapped patient key, after which
every blob sealed for them is unreadable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlite_utils import Database

from therapy import audit
from therapy.keyfile import MasterKeyring

MAGIC = b"HVS1"
NONCE_BYTES = 12
KEY_BYTES = 32
WRAPPED_KEY_BYTES = KEY_BYTES + 16


class SealingError(Exception):
    """A sealed value cannot be opened (tampered, moved, wrong key) or a key is missing."""

    code = "unreadable"


class PatientKeyDestroyed(SealingError):
    """The patient's key was crypto-shredded: their sealed records are gone for good."""

    code = "erased"


def canon(*parts: object) -> bytes:
    out = bytearray()
    for part in parts:
        raw = str(part).encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


# Tables of keys wrapped by the master key, all with the columns
# (id, <owner column>, master_key_id, wrapped, created_at, destroyed_at), and the label each
# wrap is bound to. Rotation and start-up checks walk every one that exists; the groups
# package's ``group_keys`` (one key per group, for its notes, alerts and reports) is one.
WRAPPED_KEY_TABLES = {
    "patient_keys": ("patient_id", "haven/patient-key/v1"),
    "group_keys": ("group_id", "haven/group-key/v1"),
}


def wrap_owned_key(ring: MasterKeyring, master_key_id: str, table: str, owner_id: int,
                   key_id: str, key: bytes) -> bytes:
    """Wrap a key of a ``WRAPPED_KEY_TABLES`` table under one master key."""
    label = WRAPPED_KEY_TABLES[table][1]
    return _encrypt(ring.keys[master_key_id], key, canon(label, owner_id, key_id, master_key_id))


def unwrap_owned_key(ring: MasterKeyring, table: str, row: dict) -> bytes:
    """The key of one row of a ``WRAPPED_KEY_TABLES`` table (``PatientKeyDestroyed`` once
    shredded)."""
    owner_column, label = WRAPPED_KEY_TABLES[table]
    if row["wrapped"] is None or row["destroyed_at"]:
        raise PatientKeyDestroyed("these records were erased (key destroyed)")
    master = ring.keys.get(row["master_key_id"])
    if master is None:
        raise SealingError(
            f"master key {row['master_key_id']} is not in the key file; "
            "finish `haven keys rotate` or restore the key file"
        )
    key = _decrypt(master, row["wrapped"],
                   canon(label, row[owner_column], row["id"], row["master_key_id"]))
    if len(key) != KEY_BYTES:
        raise SealingError("wrapped key has the wrong length")
    return key


def record_aad(purpose: str, table: str, row_id: object, field: str, pk_id: str) -> bytes:
    return canon("haven/sealed/v1", purpose, table, row_id, field, pk_id)


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise SealingError("sealed value is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealingError("sealed value failed authentication (tampered or moved)") from None


# --- patient keys --------------------------------------------------------------------------

def wrap_patient_key(ring: MasterKeyring, master_key_id: str, patient_id: int, pk_id: str,
                     key: bytes) -> bytes:
    return wrap_owned_key(ring, master_key_id, "patient_keys", patient_id, pk_id, key)


def unwrap_patient_key(ring: MasterKeyring, row: dict) -> bytes:
    """The patient key of a ``patient_keys`` row, unwrapped with the master key it names."""
    if row["wrapped"] is None or row["destroyed_at"]:
        raise PatientKeyDestroyed("this patient's records were erased (key destroyed)")
    return unwrap_owned_key(ring, "patient_keys", row)


@dataclass(frozen=True)
class PatientKey:
    """An unwrapped key that seals fields (:func:`seal` needs only ``id`` and ``key``; a
    group's key, groups.group_keys.GroupKey, has the same two)."""

    id: str
    patient_id: int
    key: bytes


def _key_row(db: Database, patient_id: int) -> dict | None:
    rows = list(db.query(
        "SELECT * FROM patient_keys WHERE patient_id = ? ORDER BY created_at DESC, rowid DESC "
        "LIMIT 1", [patient_id]))
    return rows[0] if rows else None


def patient_key(db: Database, ring: MasterKeyring, patient_id: int, *,
                create: bool = False) -> PatientKey:
    """The patient's current key; with ``create``, made (and wrapped) on first use."""
    row = _key_row(db, patient_id)
    if row is None:
        if not create:
            raise SealingError("this patient has no key yet")
        pk_id = "pk-" + secrets.token_hex(8)
        key = secrets.token_bytes(KEY_BYTES)
        db.table("patient_keys").insert({
            "id": pk_id, "patient_id": patient_id, "master_key_id": ring.current,
            "wrapped": wrap_patient_key(ring, ring.current, patient_id, pk_id, key),
            "created_at": audit.now_iso(), "destroyed_at": None,
        })
        return PatientKey(pk_id, patient_id, key)
    return PatientKey(row["id"], patient_id, unwrap_patient_key(ring, row))


def key_by_id(db: Database, ring: MasterKeyring, pk_id: str) -> PatientKey:
    rows = list(db.query("SELECT * FROM patient_keys WHERE id = ?", [pk_id]))
    if not rows:
        raise SealingError("the key this value was sealed with does not exist")
    return PatientKey(pk_id, rows[0]["patient_id"], unwrap_patient_key(ring, rows[0]))


def patient_erased(db: Database, patient_id: int) -> bool:
    row = _key_row(db, patient_id)
    return bool(row and (row["destroyed_at"] or row["wrapped"] is None))


# --- sealing fields ------------------------------------------------------------------------

def seal(pk: PatientKey, table: str, row_id: object, field: str, plaintext: str) -> bytes:
    """Seal one field of one record under a fresh data key wrapped by the patient key."""
    pk_raw = pk.id.encode("ascii")
    if len(pk_raw) > 255:
        raise ValueError("patient key id too long")
    data_key = secrets.token_bytes(KEY_BYTES)
    wrapped_dk = _encrypt(pk.key, data_key, record_aad("data-key", table, row_id, field, pk.id))
    body = _encrypt(data_key, plaintext.encode("utf-8"),
                    record_aad("content", table, row_id, field, pk.id))
    return MAGIC + bytes([len(pk_raw)]) + pk_raw + wrapped_dk + body


def sealed_key_id(blob: bytes) -> str:
    if not isinstance(blob, bytes | bytearray) or blob[:4] != MAGIC or len(blob) < 5:
        raise SealingError("not a sealed value")
    n = blob[4]
    try:
        return bytes(blob[5:5 + n]).decode("ascii")
    except UnicodeDecodeError:
        raise SealingError("sealed value has a malformed header") from None


def open_sealed(pk: PatientKey, table: str, row_id: object, field: str, blob: bytes) -> str:
    """Open a value sealed by :func:`seal` for exactly this table, row and field."""
    pk_id = sealed_key_id(blob)
    if pk_id != pk.id:
        raise SealingError("sealed value belongs to another key")
    offset = 5 + len(pk_id)
    wrapped_dk = bytes(blob[offset:offset + NONCE_BYTES + WRAPPED_KEY_BYTES])
    body = bytes(blob[offset + NONCE_BYTES + WRAPPED_KEY_BYTES:])
    data_key = _decrypt(pk.key, wrapped_dk, record_aad("data-key", table, row_id, field, pk_id))
    plain = _decrypt(data_key, body, record_aad("content", table, row_id, field, pk_id))
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SealingError("sealed value is not text") from None


def seal_for_patient(db: Database, ring: MasterKeyring, patient_id: int, table: str,
                     row_id: object, field: str, plaintext: str) -> bytes:
    """Convenience for other modules (e.g. report fields): seal under the patient's key."""
    if patient_erased(db, patient_id):
        raise PatientKeyDestroyed("this patient's records were erased")
    return seal(patient_key(db, ring, patient_id, create=True), table, row_id, field, plaintext)


def open_for_patient(db: Database, ring: MasterKeyring, patient_id: int, table: str,
                     row_id: object, field: str, blob: bytes) -> str:
    pk = key_by_id(db, ring, sealed_key_id(blob))
    if pk.patient_id != patient_id:
        raise SealingError("sealed value belongs to another patient")
    return open_sealed(pk, table, row_id, field, blob)


# --- crypto-shredding ----------------------------------------------------------------------

def shred_patient(db: Database, patient_id: int, *, actor: audit.Actor) -> int:
    """Destroy every key of a patient (their sealed records become unreadable). Audited.

    The wrapped key bytes are overwritten in place with secure_delete on, and the WAL is
    checkpointed afterwards so no copy of them stays in the database files."""
    db.execute("PRAGMA secure_delete = ON")
    try:
        with db.atomic():
            count = db.execute(
                "UPDATE patient_keys SET wrapped = NULL, destroyed_at = ? "
                "WHERE patient_id = ? AND destroyed_at IS NULL",
                [audit.now_iso(), patient_id]).rowcount
            if _key_row(db, patient_id) is None:
                # No key yet: record a destroyed placeholder so no key is ever made later.
                db.table("patient_keys").insert({
                    "id": "pk-" + secrets.token_hex(8), "patient_id": patient_id,
                    "master_key_id": "-", "wrapped": None, "created_at": audit.now_iso(),
                    "destroyed_at": audit.now_iso(),
                })
            audit.record(db, actor, "patient.crypto_shred", "users", patient_id,
                         patient_id=patient_id, keys_destroyed=count)
    finally:
        db.execute("PRAGMA secure_delete = OFF")
    checkpoint_wal(db)
    return count


def checkpoint_wal(db: Database) -> None:
    """Fold the WAL into the database and truncate it, so no copy of an overwritten key
    stays in the -wal file (best effort: a busy reader only delays it)."""
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except Exception:  # noqa: BLE001
        pass
