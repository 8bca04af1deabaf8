"""Every signaling message type and every CLI command is documented."""

from __future__ import annotations

import re

from media import signaling as sig
from web.cli import build_parser

from .conftest import ROOT


def test_every_signaling_message_type_is_in_protocol_md():
    text = (ROOT / "docs" / "protocol.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))
    for kind in list(sig.CLIENT_MESSAGES) + list(sig.SERVER_MESSAGES):
        assert kind in documented, f"message type {kind!r} is not documented in docs/protocol.md"


def test_every_error_code_the_hub_sends_is_documented():
    text = (ROOT / "docs" / "protocol.md").read_text()
    sources = (ROOT / "web" / "voice.py").read_text() + (ROOT / "media" / "signaling.py").read_text()
    codes = set(re.findall(r'(?:Closing|Error|ProtocolError)\(\s*"([a-z_]+)"', sources))
    codes |= set(re.findall(r'RoomError\("([a-z_]+)"', (ROOT / "therapy" / "rooms.py").read_text()))
    codes |= set(re.findall(r'ModerationError\(\s*"([a-z_]+)"',
                            (ROOT / "groups" / "moderation.py").read_text()))
    codes -= {"invalid_room_name", "invalid_room_role", "invalid_join_url"}  # not sent on the wire
    assert codes
    for code in codes:
        assert f"`{code}`" in text, f"error code {code!r} is not documented"


def test_every_cli_command_is_in_the_readme_or_docs():
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md"))
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        assert f"haven {name}" in docs, f"'haven {name}' is not documented"
