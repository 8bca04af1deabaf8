"""The safety messages of media.signaling (help_alert, concern_flag, help_alert_sent,
safety_alert, notes_state): what a client may send parses or is refused with a
ProtocolError, never anything else; what the server sends survives its own parser."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import signaling as sig

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
pids = st.from_regex(r"p-[0-9a-f]{12}", fullmatch=True)


@given(kind=st.sampled_from(["help_alert", "concern_flag"]),
       fields=st.dictionaries(st.sampled_from(["message", "note", "participant_id", "x"]),
                              json_values | pids, max_size=4))
def test_client_safety_messages_parse_or_are_refused(kind, fields):
    raw = json.dumps({**fields, "type": kind})
    try:
        msg = sig.parse_client_message(raw)
    except sig.ProtocolError as exc:
        assert exc.code in ("invalid_message", "malformed", "too_large")
        return
    assert msg.type == kind
    text = msg.message if kind == "help_alert" else msg.note
    assert text is None or isinstance(text, str)


@given(text=st.text(max_size=600))
def test_a_long_message_is_the_hubs_to_refuse_not_the_parsers(text):
    # A person in distress must not lose the connection over a long message: the parser
    # accepts any text; the hub answers `message_too_long` (tests/test_safety_live.py).
    assert sig.parse_client_message(json.dumps({"type": "help_alert", "message": text})
                                    ).message == text


@given(alert_id=st.integers(1, 2**53), kind=st.sampled_from(sig.ALERT_KINDS),
       pseudonym=st.text(min_size=1, max_size=64), pid=st.none() | pids,
       message=st.none() | st.text(max_size=500), gid=st.none() | st.integers(1, 2**31),
       live=st.booleans())
def test_server_safety_messages_round_trip(alert_id, kind, pseudonym, pid, message, gid, live):
    sent = sig.SafetyAlert(alert_id, kind, pseudonym, "2026-12-01T18:00:00+00:00", pid,
                           message, gid, None, live)
    assert sig.parse_server_message(sent.to_json()) == sent
    ack = sig.HelpAlertSent(alert_id, "2026-12-01T18:00:00+00:00", "later", "Sent.")
    assert sig.parse_server_message(ack.to_json()) == ack


@pytest.mark.parametrize("state", sig.NOTES_STATES)
def test_notes_state_carries_the_state_only(state):
    msg = sig.NotesState(state)
    assert msg.to_dict() == {"type": "notes_state", "state": state}
    assert sig.parse_server_message(msg.to_json()) == msg


@pytest.mark.parametrize("bad", ["taking", "", None, 1])
def test_notes_state_refuses_anything_else(bad):
    with pytest.raises(sig.ProtocolError):
        sig.parse_server_message(json.dumps({"type": "notes_state", "state": bad}))
