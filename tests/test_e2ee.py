"""Tests for media/e2ee.py: identity cards, key files, key wrapping, lifecycle, security code."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from media.e2ee import (
    IdentityCard,
    IdentityCardError,
    IdentityKeys,
    KeyExchangeError,
    KeyFileError,
    KeyFilePermissionError,
    Member,
    SenderKeyManager,
    WrappedKey,
    b64u_decode,
    b64u_encode,
    canonical_encode,
    commitment,
    security_code,
    unwrap_sender_key,
    wrap_sender_key,
)
from media.sframe import (
    AES_256_GCM_SHA512_128,
    SenderKey,
    SFrameReceiver,
    UnknownKeyError,
)

ALICE = IdentityKeys.generate()
BOB = IdentityKeys.generate()
CAROL = IdentityKeys.generate()
POOL = [IdentityKeys.generate() for _ in range(6)]


def member(pid: str, sid: int, keys: IdentityKeys) -> Member:
    return Member(pid, sid, keys.card())


def fixed_identity(start: int) -> IdentityKeys:
    return IdentityKeys(
        Ed25519PrivateKey.from_private_bytes(bytes(range(start, start + 32))),
        X25519PrivateKey.from_private_bytes(bytes(range(start + 32, start + 64))),
    )


# --------------------------------------------------------------------------- encodings


def test_canonical_encode_layout() -> None:
    assert canonical_encode(b"ab", "c", 1) == bytes.fromhex(
        "0000000261620000000163000000080000000000000001"
    )
    assert canonical_encode("é") == b"\x00\x00\x00\x02\xc3\xa9"
    with pytest.raises(ValueError):
        canonical_encode(-1)
    with pytest.raises(TypeError):
        canonical_encode(True)


def test_canonical_encode_is_unambiguous() -> None:
    assert canonical_encode("ab", "c") != canonical_encode("a", "bc")


@pytest.mark.parametrize("bad", ["AA==", "A+/B", "A", "AB C", 5, "AB"])
def test_b64u_decode_is_strict(bad: object) -> None:
    # "AB" decodes to one byte whose canonical form is "AA"; trailing bits must be zero
    with pytest.raises(KeyExchangeError):
        b64u_decode(bad)


@given(st.binary(max_size=100))
def test_b64u_round_trip(data: bytes) -> None:
    assert b64u_decode(b64u_encode(data)) == data


# --------------------------------------------------------------------------- identity cards


def test_card_round_trip_and_verify() -> None:
    card = ALICE.card()
    as_json = json.loads(json.dumps(card.to_dict()))
    assert set(as_json) == {"v", "ed25519", "x25519", "sig"}
    again = IdentityCard.from_dict(as_json)
    assert again == card
    again.verify()
    assert card.fingerprint == ALICE.ed25519_public + ALICE.x25519_public


def test_card_with_substituted_agreement_key_is_rejected() -> None:
    card = ALICE.card()
    with pytest.raises(IdentityCardError):
        IdentityCard(card.ed25519, BOB.x25519_public, card.signature)
    forged = dict(card.to_dict(), x25519=b64u_encode(BOB.x25519_public))
    with pytest.raises(IdentityCardError):
        IdentityCard.from_dict(forged)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("sig"),
        lambda d: d.update(extra=1),
        lambda d: d.update(v=2),
        lambda d: d.update(v=True),
        lambda d: d.update(ed25519=d["ed25519"] + "A"),
        lambda d: d.update(sig=d["sig"] + "=="),
    ],
)
def test_card_from_dict_is_strict(mutate) -> None:
    data = ALICE.card().to_dict()
    mutate(data)
    with pytest.raises(IdentityCardError):
        IdentityCard.from_dict(data)


# --------------------------------------------------------------------------- key file


def test_key_file_round_trip(tmp_path) -> None:
    path = tmp_path / "identity.json"
    ALICE.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = IdentityKeys.load(path)
    assert loaded.card() == ALICE.card()
    ALICE.save(path)  # overwriting keeps 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["identity.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_key_file_with_group_or_other_access_is_refused(tmp_path, mode: int) -> None:
    path = tmp_path / "identity.json"
    ALICE.save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600"):
        IdentityKeys.load(path)
    os.chmod(path, 0o600)
    assert IdentityKeys.load(path).card() == ALICE.card()


def test_key_file_errors(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        IdentityKeys.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="not valid JSON"):
        IdentityKeys.load(bad)
    bad.write_text(json.dumps({"type": "other"}))
    with pytest.raises(KeyFileError, match="not a haven-identity-v1"):
        IdentityKeys.load(bad)
    data = ALICE.to_private_dict()
    data["x25519_private"] = data["x25519_private"][:-2]
    bad.write_text(json.dumps(data))
    with pytest.raises(KeyFileError):
        IdentityKeys.load(bad)


def test_private_keys_not_in_repr() -> None:
    text = repr(ALICE)
    assert b64u_encode(ALICE.signing_key.private_bytes_raw()) not in text
    assert "X25519PrivateKey" not in text


# --------------------------------------------------------------------------- wrapping

ROOM = "room-42"


def wrap(key: SenderKey, **kw) -> WrappedKey:
    args = dict(
        room_id=ROOM,
        sender_identity=ALICE,
        sender_participant_id="p1",
        recipient=member("p2", 2, BOB),
    )
    args.update(kw)
    return wrap_sender_key(key, **args)


def unwrap(blob: WrappedKey, **kw) -> SenderKey:
    args = dict(
        room_id=ROOM,
        recipient_identity=BOB,
        recipient_participant_id="p2",
        sender=member("p1", 1, ALICE),
    )
    args.update(kw)
    return unwrap_sender_key(blob, **args)


@settings(max_examples=60, deadline=None)
@given(
    room=st.text(min_size=1, max_size=30),
    sender_pid=st.text(min_size=1, max_size=12),
    recipient_pid=st.text(min_size=1, max_size=12),
    sid=st.integers(0, 4095),
    generation=st.integers(0, 2**32 - 1),
    step=st.integers(0, 2**32 - 1),
    suite_and_len=st.sampled_from([(4, 16), (4, 32), (5, 32), (5, 64)]),
)
def test_wrap_unwrap_round_trip(
    room, sender_pid, recipient_pid, sid, generation, step, suite_and_len
) -> None:
    try:
        room.encode("utf-8"), sender_pid.encode("utf-8"), recipient_pid.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are not valid ids (rejected by validation)
    suite, length = suite_and_len
    key = SenderKey(sid, generation, step, os.urandom(length), suite)
    blob = wrap_sender_key(
        key,
        room_id=room,
        sender_identity=ALICE,
        sender_participant_id=sender_pid,
        recipient=Member(recipient_pid, 7, BOB.card()),
    )
    wire = json.loads(json.dumps(blob.to_dict()))
    got = unwrap_sender_key(
        WrappedKey.from_dict(wire),
        room_id=room,
        recipient_identity=BOB,
        recipient_participant_id=recipient_pid,
        sender=Member(sender_pid, sid, ALICE.card()),
    )
    assert got == key


def test_wrapped_key_json_shape() -> None:
    blob = wrap(SenderKey.generate(1))
    data = blob.to_dict()
    assert set(data) == {
        "v", "room", "from", "to", "sender_id", "generation", "ratchet_step", "suite",
        "nonce", "ct", "sig",
    }  # fmt: skip
    assert (data["room"], data["from"], data["to"], data["sender_id"]) == (ROOM, "p1", "p2", 1)
    assert len(b64u_decode(data["ct"])) == 16 + 16
    assert "base_key" not in repr(blob)


_AAD_FIELDS = {
    "room_id": "room-43",
    "sender_participant_id": "p9",
    "recipient_participant_id": "p8",
    "sender_id": 5,
    "generation": 1,
    "ratchet_step": 9,
    "cipher_suite": AES_256_GCM_SHA512_128,
}


@pytest.mark.parametrize("name", sorted(_AAD_FIELDS))
def test_altered_field_fails_even_with_matching_expectations(name: str) -> None:
    """A field changed in transit fails; re-signing (a malicious sender replaying someone
    else's blob under new ids) still fails because the field is in the AES-GCM AAD."""
    key = SenderKey.generate(1)
    blob = wrap(key)
    altered = dataclasses.replace(blob, **{name: _AAD_FIELDS[name]})
    expect = dict(
        room_id=altered.room_id,
        recipient_participant_id=altered.recipient_participant_id,
        sender=Member(altered.sender_participant_id, altered.sender_id, ALICE.card()),
    )
    with pytest.raises(KeyExchangeError, match="signature"):
        unwrap(altered, **expect)
    resigned = dataclasses.replace(
        altered, signature=ALICE.signing_key.sign(altered.signed_message())
    )
    with pytest.raises(KeyExchangeError, match="does not decrypt"):
        unwrap(resigned, **expect)
    with pytest.raises(KeyExchangeError):
        unwrap(altered)  # and against the original expectations
    assert unwrap(blob) == key


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(sorted(_AAD_FIELDS)),
    text=st.text(alphabet="abcxyz019-", min_size=1, max_size=8),
    number=st.integers(0, 4095),
)
def test_any_altered_aad_field_fails(name: str, text: str, number: int) -> None:
    key = SenderKey.generate(1)
    blob = wrap(key)
    value = text if isinstance(_AAD_FIELDS[name], str) else number
    if name == "cipher_suite":
        value = 5 if blob.cipher_suite == 4 else 4
    if getattr(blob, name) == value:
        return
    altered = dataclasses.replace(blob, **{name: value})
    altered = dataclasses.replace(
        altered, signature=ALICE.signing_key.sign(altered.signed_message())
    )
    with pytest.raises(KeyExchangeError):
        unwrap(
            altered,
            room_id=altered.room_id,
            recipient_participant_id=altered.recipient_participant_id,
            sender=Member(altered.sender_participant_id, altered.sender_id, ALICE.card()),
        )


@pytest.mark.parametrize("name", ["nonce", "ciphertext", "signature"])
def test_flipped_bytes_fail(name: str) -> None:
    blob = wrap(SenderKey.generate(1))
    value = bytearray(getattr(blob, name))
    value[-1] ^= 0x01
    with pytest.raises(KeyExchangeError):
        unwrap(dataclasses.replace(blob, **{name: bytes(value)}))


def test_wrong_recipient_or_impostor_fails() -> None:
    key = SenderKey.generate(1)
    blob = wrap(key)
    # Carol holds the blob and claims to be p2: her X25519 key does not open it.
    with pytest.raises(KeyExchangeError, match="does not decrypt"):
        unwrap(blob, recipient_identity=CAROL)
    # Carol signs a key in Alice's name: signature does not verify against Alice's card.
    forged = wrap(key, sender_identity=CAROL)
    with pytest.raises(KeyExchangeError, match="signature"):
        unwrap(forged)
    # The roster says p1 has another SFrame sender id: refuse to install under the KID.
    with pytest.raises(KeyExchangeError, match="sender id"):
        unwrap(blob, sender=member("p1", 2, ALICE))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("to"),
        lambda d: d.update(extra="x"),
        lambda d: d.update(v=2),
        lambda d: d.update(generation=True),
        lambda d: d.update(generation="1"),
        lambda d: d.update(generation=-1),
        lambda d: d.update(sender_id=4096),
        lambda d: d.update(room=""),
        lambda d: d.update(nonce=d["nonce"][:-1]),
        lambda d: d.update(ct="!!"),
        lambda d: d.update(sig=None),
    ],
)
def test_wrapped_key_from_dict_is_strict(mutate) -> None:
    data = wrap(SenderKey.generate(1)).to_dict()
    mutate(data)
    with pytest.raises(KeyExchangeError):
        WrappedKey.from_dict(data)


def test_low_order_x25519_key_rejected() -> None:
    # An all-zero u-coordinate is a low-order point: the agreement gives the zero secret.
    # It cannot be put in a valid card without the signer's cooperation, so sign one.
    signer = Ed25519PrivateKey.generate()
    ed = signer.public_key().public_bytes_raw()
    x = bytes(32)
    card = IdentityCard(ed, x, signer.sign(canonical_encode(b"haven/e2ee/v1 identity-card", ed, x)))
    with pytest.raises(KeyExchangeError, match="agreement"):
        wrap(SenderKey.generate(1), recipient=Member("p2", 2, card))


# --------------------------------------------------------------------------- documented example


def test_documented_example_vector() -> None:
    """The example in docs/protocol.md, for checking the browser implementation."""
    alice, bob = fixed_identity(0), fixed_identity(64)
    assert alice.card().to_dict() == {
        "v": 1,
        "ed25519": "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
        "x25519": "NYBy1jZYgNGu6jKa35EhODhR7SGijjt16WXQ0s0WYlQ",
        "sig": "YoJH-IoJ1ccUzf3Ce-HURFaByntWj9uw3nX8fLXCq3e1u-xW8l0m5WJz1irH2m7r1ylyglVLbU65asjA7Pl4Dw",
    }
    key = SenderKey(1, 2, 3, bytes(range(16)), 4)
    blob = wrap_sender_key(
        key,
        room_id="room-1",
        sender_identity=alice,
        sender_participant_id="p1",
        recipient=Member("p2", 2, bob.card()),
        _nonce=bytes(range(12)),
    )
    assert blob.aad().hex() == (
        "0000001a686176656e2f653265652f7631206b65792d777261702061616400000006726f6f6d2d31"
        "000000027031000000027032000000080000000000000001000000080000000000000002"
        "000000080000000000000003000000080000000000000004"
    )
    assert blob.to_dict() == {
        "v": 1,
        "room": "room-1",
        "from": "p1",
        "to": "p2",
        "sender_id": 1,
        "generation": 2,
        "ratchet_step": 3,
        "suite": 4,
        "nonce": "AAECAwQFBgcICQoL",
        "ct": "7cqeEg-keTxmyWnJTTiza22XOf0AJRCNLHN6FU3DxNM",
        "sig": "-XGBcra2Sp92bceDZ9-BaY-95X4LeLRkDEqe7FvFsWXeQmnvAbvdB8NKOGkHDY3ypmht7ItTDtTcfw6K2diSCw",
    }
    got = unwrap_sender_key(
        blob,
        room_id="room-1",
        recipient_identity=bob,
        recipient_participant_id="p2",
        sender=Member("p1", 1, alice.card()),
    )
    assert got == key
    assert security_code("room-1", [alice.card(), bob.card()]) == "978 085 562 264 088"
    assert security_code("room-1", [bob.card(), alice.card()], digits=12) == "0855 6226 4088"


# --------------------------------------------------------------------------- security code

CODE_15 = re.compile(r"\d{3}( \d{3}){4}")
CODE_12 = re.compile(r"\d{4}( \d{4}){2}")


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(len(POOL))), st.integers(1, len(POOL)))
def test_security_code_is_order_independent(order, count) -> None:
    cards = [POOL[i].card() for i in range(count)]
    shuffled = [POOL[i].card() for i in order if i < count]
    code = security_code(ROOM, cards)
    assert CODE_15.fullmatch(code)
    assert security_code(ROOM, shuffled) == code
    assert CODE_12.fullmatch(security_code(ROOM, shuffled, digits=12))


@settings(max_examples=30, deadline=None)
@given(st.sets(st.integers(0, len(POOL) - 1), min_size=2))
def test_security_code_changes_with_membership(indices) -> None:
    cards = [POOL[i].card() for i in sorted(indices)]
    code = security_code(ROOM, cards)
    assert security_code(ROOM, cards[1:]) != code  # someone left
    assert security_code(ROOM, cards + [CAROL.card()]) != code  # someone joined
    assert security_code("other-room", cards) != code


def test_security_code_detects_substituted_keys() -> None:
    honest = security_code(ROOM, [ALICE.card(), BOB.card()])
    # A server showing Alice a fake "Bob" produces a different code on Alice's screen.
    mallory = IdentityKeys.generate()
    assert security_code(ROOM, [ALICE.card(), mallory.card()]) != honest
    # Same signing key, substituted agreement key: also visible.
    swapped = BOB.with_fresh_agreement_key()
    assert swapped.ed25519_public == BOB.ed25519_public
    assert security_code(ROOM, [ALICE.card(), swapped.card()]) != honest


def test_security_code_contributions_and_commitments() -> None:
    cards = [ALICE.card(), BOB.card()]
    r1, r2 = os.urandom(32), os.urandom(32)
    with_contrib = security_code(ROOM, cards, contributions=[r1, r2])
    assert with_contrib == security_code(ROOM, cards, contributions=[r2, r1])
    assert with_contrib != security_code(ROOM, cards)
    c = commitment(ROOM, ALICE.card(), r1)
    assert len(c) == 32 and c == commitment(ROOM, ALICE.card(), r1)
    assert c != commitment(ROOM, ALICE.card(), r2)
    assert c != commitment(ROOM, BOB.card(), r1)
    with pytest.raises(ValueError):
        security_code(ROOM, cards, contributions=[b"short"])


@pytest.mark.parametrize("digits", [11, 13, 14, 61])
def test_security_code_digit_count_validation(digits: int) -> None:
    with pytest.raises(ValueError):
        security_code(ROOM, [ALICE.card()], digits=digits)


def test_security_code_needs_cards() -> None:
    with pytest.raises(ValueError):
        security_code(ROOM, [])


# --------------------------------------------------------------------------- lifecycle


class Client:
    def __init__(self, pid: str, sid: int, keys: IdentityKeys) -> None:
        self.member = member(pid, sid, keys)
        self.mgr = SenderKeyManager(ROOM, keys, pid, sid)


def deliver(blobs, clients: dict[str, Client]) -> None:
    for blob in blobs:
        wire = WrappedKey.from_dict(json.loads(json.dumps(blob.to_dict())))
        clients[blob.recipient_participant_id].mgr.accept(wire)


def test_join_ratchets_and_leave_rekeys() -> None:
    a = Client("p1", 1, ALICE)
    b = Client("p2", 2, BOB)
    clients = {"p1": a, "p2": b}
    # each client learns the roster first, then the blobs are relayed
    initial = a.mgr.start([b.member]) + b.mgr.start([a.member])
    deliver(initial, clients)
    before_join = a.mgr.sender.encrypt(b"private words")
    assert b.mgr.receiver.decrypt(before_join) == b"private words"

    # Carol joins: Alice ratchets and wraps only for Carol.
    c = Client("p3", 3, CAROL)
    clients["p3"] = c
    from_carol = c.mgr.start([a.member, b.member])
    blobs = a.mgr.member_joined(c.member)
    assert [x.recipient_participant_id for x in blobs] == ["p3"]
    assert blobs[0].ratchet_step == 1 and blobs[0].generation == 0
    deliver(blobs + b.mgr.member_joined(c.member) + from_carol, clients)

    after_join = a.mgr.sender.encrypt(b"hello carol")
    assert c.mgr.receiver.decrypt(after_join) == b"hello carol"
    assert b.mgr.receiver.decrypt(after_join) == b"hello carol"  # Bob derived step 1 himself
    with pytest.raises(UnknownKeyError):
        c.mgr.receiver.decrypt(before_join)  # Carol cannot read what came before
    assert a.mgr.receiver.decrypt(c.mgr.sender.encrypt(b"hi")) == b"hi"

    # Carol leaves: Alice moves to generation 1, wrapped only for Bob.
    blobs = a.mgr.member_left("p3")
    assert [(x.recipient_participant_id, x.generation, x.ratchet_step) for x in blobs] == [
        ("p2", 1, 0)
    ]
    deliver(blobs, clients)
    after_leave = a.mgr.sender.encrypt(b"only bob")
    assert b.mgr.receiver.decrypt(after_leave) == b"only bob"
    with pytest.raises(UnknownKeyError):
        c.mgr.receiver.decrypt(after_leave)  # Carol's old keys are useless now
    assert a.mgr.member_left("p3") == []


def test_codes_agree_between_members() -> None:
    a = SenderKeyManager(ROOM, ALICE, "p1", 1)
    b = SenderKeyManager(ROOM, BOB, "p2", 2)
    a.start([member("p2", 2, BOB)])
    b.start([member("p1", 1, ALICE)])
    assert a.security_code() == b.security_code()
    before = a.security_code()
    a.member_joined(member("p3", 3, CAROL))
    assert a.security_code() != before


def test_full_redistribution_every_max_ahead_joins() -> None:
    receiver = SFrameReceiver(max_ratchet_ahead=4)
    a = SenderKeyManager(ROOM, ALICE, "p1", 1, receiver=receiver)
    sizes = []
    for i in range(8):
        sizes.append(len(a.member_joined(Member(f"q{i}", 10 + i, POOL[i % len(POOL)].card()))))
    # steps 1..8: full redistribution at steps 4 and 8
    assert sizes == [1, 1, 1, 4, 1, 1, 1, 8]


def test_manager_rejects_bad_rosters_and_blobs() -> None:
    a = SenderKeyManager(ROOM, ALICE, "p1", 1)
    a.start([member("p2", 2, BOB)])
    with pytest.raises(KeyExchangeError, match="sender id"):
        a.member_joined(member("p3", 2, CAROL))
    with pytest.raises(KeyExchangeError, match="sender id"):
        a.member_joined(member("p3", 1, CAROL))
    with pytest.raises(KeyExchangeError, match="ourselves"):
        a.member_joined(member("p1", 5, CAROL))
    assert a.member_joined(member("p2", 2, BOB)) == []  # duplicate announcement
    stranger = SenderKeyManager(ROOM, CAROL, "p9", 9)
    blob = stranger.start([member("p1", 1, ALICE)])[0]
    with pytest.raises(KeyExchangeError, match="unknown participant"):
        a.accept(blob)
