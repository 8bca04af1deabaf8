"""Fault 5 of issue 11: deeply nested JSON is ``malformed``, never ``internal_error``.

``json.loads`` raises RecursionError on "[[[[…" nested past the interpreter's limit; on the
signaling socket that surfaced as ``internal_error``, and on the JSON API as a 500. Also
JSON nested less deeply than that but more than any real message (which could exhaust the
stack in later code) is refused up front.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import signaling as sig
from media.e2ee import IdentityKeys
from media.voice_client import VoiceClient

from .test_practice_http import error_of
from .test_signaling import call, join_msg, raw_exchange, still_flowing  # noqa: F401
from .voice_support import tone  # noqa: F401


def nested(depth: int, inner: str = "1", *, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


DEEP = [
    "[" * 40_000,                                   # unterminated, past the recursion limit
    nested(20_000),
    nested(10_000, kind="dict"),
    '{"type": "join", "identity": ' + nested(5_000, kind="dict") + "}",
    '{"type": "keys", "keys": ' + nested(30) + "}",  # parses, but deeper than any message
]


@pytest.mark.parametrize("raw", DEEP, ids=lambda r: f"{len(r)}B")
@pytest.mark.parametrize("parse", [sig.parse_client_message, sig.parse_server_message])
def test_deep_nesting_is_malformed(parse, raw):
    with pytest.raises(sig.ProtocolError) as exc:
        parse(raw)
    assert exc.value.code == "malformed"


@settings(max_examples=200, deadline=None)
@given(depth=st.integers(1, 200), kind=st.sampled_from(["list", "dict"]),
       field=st.sampled_from(["identity", "keys", "blob", "sdp", "x"]),
       type_=st.sampled_from(list(sig.CLIENT_MESSAGES)))
def test_any_nesting_gives_a_protocol_error_or_a_message(depth, kind, field, type_):
    raw = json.dumps({"type": type_, field: json.loads(nested(depth, kind=kind))})
    try:
        sig.parse_client_message(raw)
    except sig.ProtocolError as exc:
        assert exc.code in ("malformed", "invalid_message", "invalid_token", "too_large")
        if depth + 1 > sig.MAX_DEPTH:
            assert exc.code == "malformed"


def test_real_messages_are_well_within_the_depth_limit():
    card = IdentityKeys.generate().card().to_dict()
    joined = sig.Joined("r-" + "0" * 16, "p-" + "a" * 12, 1, "member", "Sam",
                        (sig.MemberInfo("p-" + "b" * 12, 2, "Kit", "host", card, False, None),),
                        1)
    assert not sig.exceeds_depth(joined.to_dict(), 5)
    assert sig.parse_server_message(joined.to_json()) == joined


@pytest.mark.slow
async def test_nested_json_on_the_socket_is_malformed_and_the_call_goes_on(call):  # noqa: F811
    server, a, b, spare = call
    for raw in DEEP[:3]:
        got = await raw_exchange(server, [raw])
        assert got[-1]["type"] == "error" and got[-1]["code"] == "malformed", got
    # After joining, too.
    got = await raw_exchange(server, [join_msg(spare[0]), DEEP[1]])
    assert got[0]["type"] == "joined"
    assert got[-1]["type"] == "error" and got[-1]["code"] == "malformed"
    await still_flowing(a, b)
    assert isinstance(a, VoiceClient)


async def test_nested_json_body_on_the_api_is_400(client):
    await client.prime()
    for raw in ["[" * 40_000, '{"username": ' + nested(20_000) + "}",
                '{"username": ' + nested(40) + ', "password": "x"}']:
        resp = await client.client.post("/api/login", data=raw, headers={
            "Content-Type": "application/json", "X-CSRF-Token": client.csrf})
        err = await error_of(resp, 400)
        assert err["code"] == "malformed_json"
