"""Group notes and who is really in the room: the voice hub records presence as people join
and leave a meeting through the real signaling server, so a member without consent to group
notes who joins pauses the open note at once (the facilitators are told) and leaving lets it
go on. Presence left over from a stopped server is cleared when the next one starts."""

from __future__ import annotations

import pytest

from groups import group_notes, presence
from media import signaling as sig
from therapy.audit import Actor
from web import appkeys

from .moderation_support import Peer, build_meeting
from .test_voice_e2e import wait_for
from .voice_support import VoiceServer

pytestmark = pytest.mark.slow


def _run(world, fn):
    return world.write(fn)


def _meeting_id(world) -> int:
    return _run(world, lambda db: db.execute(
        "SELECT id FROM group_meetings WHERE room_id = ?", [world.room_id]).fetchone()[0])


def _consent(world, who: str) -> None:
    doc = group_notes.document()
    _run(world, lambda db: group_notes.give_consent(
        db, world.users[who], world.group_id, doc.version, doc.sha256, actor=Actor.system()))


def _present(world) -> list[str]:
    mid = _meeting_id(world)
    return [p["pseudonym"] for p in _run(world, lambda db: presence.present(db, mid))]


async def test_joining_without_consent_pauses_the_note_and_leaving_resumes_it(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=2, co=False)
        ring = server.app[appkeys.DATA_DIR].keyring
        for who in ("Sage", "M1"):
            _consent(world, who)
        sage = await Peer(world.link("Sage")).start()
        m1 = await Peer(world.link("M1")).start()
        m2 = None
        try:
            await wait_for(lambda: _present(world) == ["Sage", "M1"])
            note = _run(world, lambda db: group_notes.start_note(
                db, ring, world.users["Sage"], world.group_id, world.key, "first words",
                actor=Actor.system()))
            assert note["state"] == "on"

            # M2 has not consented: joining pauses the note; Sage is told, the members not.
            m2 = await Peer(world.link("M2")).start()
            await sage.wait(lambda m: isinstance(m, sig.Notice) and m.code == "notes_paused")
            mid = _meeting_id(world)
            assert _run(world, lambda db: group_notes.state(db, mid))["missing"] == ["M2"]
            with pytest.raises(Exception, match="consent"):
                _run(world, lambda db: group_notes.edit_note(
                    db, ring, world.users["Sage"], world.group_id, note["id"], "more", False,
                    actor=Actor.system()))
            for member in (m1, m2):
                assert not any(isinstance(m, sig.Notice) and m.code == "notes_paused"
                               for m in member.messages)

            # M2 leaves: the note goes on.
            await m2.close()
            m2 = None
            await wait_for(lambda: _present(world) == ["Sage", "M1"])
            edited = _run(world, lambda db: group_notes.edit_note(
                db, ring, world.users["Sage"], world.group_id, note["id"], "more", False,
                actor=Actor.system()))
            assert edited["state"] == "on"
        finally:
            for p in (sage, m1, m2):
                if p is not None:
                    await p.close()
        await wait_for(lambda: _present(world) == [])


async def test_presence_left_by_a_stopped_server_is_cleared_at_start(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=1, co=False)
        mid = _meeting_id(world)
        _run(world, lambda db: presence.joined(db, mid, world.member_ids["M1"]))
        assert _present(world) == ["M1"]
    async with VoiceServer(tmp_path / "data") as again:
        assert again.hub is not None
        assert _present(world) == []
