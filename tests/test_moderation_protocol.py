"""The moderation messages as validated dataclasses: each one round-trips through its JSON,
and bad fields are refused with a ProtocolError (never a crash, never a half-read value)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import signaling as sig

PID = "p-0123456789ab"

EXAMPLES = [
    sig.Hand(True), sig.Hand(False), sig.HandLower(PID), sig.HandsLowerAll(), sig.HandFront(PID),
    sig.Piece(True, 180), sig.Piece(False), sig.PiecePass(PID), sig.PiecePass(None),
    sig.PieceReturn(), sig.MuteAll(), sig.Allow(PID), sig.AskToSpeak(), sig.SelfMute(True),
    sig.SendToLobby(PID), sig.Ban(PID, "meeting"), sig.Ban(PID, "group"), sig.Lock(True), sig.Pause(True), sig.Pause(False),
    sig.SideRoomInvite(PID), sig.SideRoomAccept(), sig.SideRoomDecline(), sig.SideRoomReturn(),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: f"{m.type}")
def test_round_trip(message):
    assert sig.parse_client_message(message.to_json()) == message


def test_every_moderation_message_is_a_client_message():
    for cls in sig.MODERATION_MESSAGES + sig.SIDE_ROOM_MESSAGES + (sig.SelfMute,):
        assert sig.CLIENT_MESSAGES[cls.type] is cls
    assert {c.type for c in sig.FACILITATOR_MESSAGES} <= set(sig.CLIENT_MESSAGES)


@pytest.mark.parametrize("raw", [
    {"type": "hand"}, {"type": "hand", "raised": "yes"}, {"type": "hand", "raised": 1},
    {"type": "hand_lower", "participant_id": "me"}, {"type": "hand_front"},
    {"type": "piece", "on": True, "share_seconds": 5},
    {"type": "piece", "on": True, "share_seconds": 99999},
    {"type": "piece", "on": True, "share_seconds": True}, {"type": "piece"},
    {"type": "piece_pass", "participant_id": 7}, {"type": "allow", "participant_id": None},
    {"type": "ban", "participant_id": PID, "scope": "forever"}, {"type": "lock", "locked": None},
    {"type": "self_mute", "muted": "no"}, {"type": "send_to_lobby", "participant_id": ""},
    {"type": "side_room_invite"}, {"type": "side_room_invite", "participant_id": "p-XYZ"},
])
def test_bad_fields_are_refused(raw):
    with pytest.raises(sig.ProtocolError) as exc:
        sig.parse_client_message(json.dumps(raw))
    assert exc.value.code == "invalid_message"


@given(st.sampled_from([c.type for c in sig.MODERATION_MESSAGES + sig.SIDE_ROOM_MESSAGES]
                       + ["self_mute"]),
       st.dictionaries(st.sampled_from(["raised", "participant_id", "on", "share_seconds",
                                        "scope", "locked", "muted"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                                 st.text(max_size=40), st.just(PID))))
def test_any_fields_parse_or_are_refused_cleanly(kind, fields):
    try:
        message = sig.parse_client_message(json.dumps({"type": kind, **fields}))
    except sig.ProtocolError as exc:
        assert exc.code in ("invalid_message", "too_large")
        return
    assert message.type == kind
    assert sig.parse_client_message(message.to_json()) == message


def test_server_moderation_state_parses():
    state = {"queue": [{"participant_id": PID, "asked_to_speak": True}], "piece_on": True,
             "holder": PID, "share_seconds": 180, "share_remaining": 12.0, "muted": [],
             "self_muted": [PID], "facilitators": [], "locked": False,
             "facilitator_present": True}
    m = sig.Moderation(state, sig.ModerationEvent("piece_passed", PID, PID))
    back = sig.parse_server_message(m.to_json())
    assert back.state == state and back.event == m.event
    with pytest.raises(sig.ProtocolError):
        sig.parse_server_message(json.dumps({"type": "moderation", "state": {"queue": 1}}))


@pytest.mark.parametrize("status", sig.SIDE_ROOM_STATUSES)
def test_side_room_server_message_round_trips(status):
    m = sig.SideRoom(status, PID, "p-abcdef", PID, "Sage", "M1")
    assert sig.parse_server_message(m.to_json()) == m


@pytest.mark.parametrize("raw", [
    {"status": "gone", "facilitator": PID, "member": PID, "by": PID},
    {"status": "opened", "facilitator": "x", "member": PID, "by": PID},
    {"status": "opened", "facilitator": PID, "member": PID},
    {"status": "opened", "facilitator": PID, "member": PID, "by": PID, "member_name": 5},
    {"status": "opened", "facilitator": PID, "member": PID, "by": PID,
     "facilitator_name": "x" * 65},
])
def test_bad_side_room_server_messages_are_refused(raw):
    with pytest.raises(sig.ProtocolError):
        sig.parse_server_message(json.dumps({"type": "side_room", **raw}))
