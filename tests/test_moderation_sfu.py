"""Moderation enforced by the SFU, with real aiortc Python clients through the real server:
frames are counted per sender at every receiving client."""

from __future__ import annotations

import asyncio
import time

import pytest

from groups import meetings
from media import signaling as sig
from media.e2ee import IdentityKeys
from media.sframe import SFrameError
from media.voice_client import VoiceClient
from therapy.audit import Actor

from .moderation_support import Ledger, Peer, build_meeting, raw_token
from .test_voice_e2e import wait_for
from .voice_support import VoiceServer, tone

pytestmark = pytest.mark.slow

WINDOW_S = 1.0  # frames sent within this long after a change are counted
HEARD = 10  # frames of a window that count as "heard" (50 a second are sent)
CATCH_UP_S = 10.0  # a loaded machine may deliver a window's frames this much later


class Meeting:
    def __init__(self, world):
        self.world = world
        self.clients: dict[str, VoiceClient] = {}
        self.ledger = Ledger()
        self.inbox: dict[str, list[str]] = {}

    async def add(self, who: str, freq: float, url: str | None = None) -> VoiceClient:
        self.inbox[who] = []
        c = VoiceClient(url or self.world.link(who), IdentityKeys.generate(),
                        send_pcm=tone(freq, seconds=60),
                        on_message=lambda d, t, w=who: self.inbox[w].append(t)
                        if d == "in" else None)
        self.ledger.attach(c, who)
        await c.start()
        self.clients[who] = c
        return c

    def pid(self, who: str) -> str:
        return self.clients[who].participant_id

    def messages(self, who: str, kind: type) -> list:
        out = []
        for text in self.inbox[who]:
            m = sig.parse_server_message(text)
            if isinstance(m, kind):
                out.append(m)
        return out

    async def window(self, heard: tuple[str, ...]) -> dict[str, dict[str, int]]:
        """Frames each receiver got from each sender (by name), of those sent during one
        window starting now; waits until every sender in ``heard`` reached every receiver
        (or CATCH_UP_S), so what is missing is missing, not late."""
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        await asyncio.sleep(WINDOW_S)
        t1 = time.monotonic()
        names = list(self.clients)

        def table():
            return {rx: {tx: self.ledger.heard(rx, tx, t0, t1) for tx in names if tx != rx}
                    for rx in names}

        end = loop.time() + CATCH_UP_S
        while loop.time() < end and not all(
                table()[rx][tx] > HEARD for tx in heard for rx in names if rx != tx):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        return table()

    async def applied(self, who: str, cond) -> None:
        """Wait until ``who`` saw a moderation state satisfying ``cond`` (the hub had set the
        SFU's forwarding before it broadcast that state)."""
        def seen():
            states = self.messages(who, sig.Moderation)
            return bool(states) and cond(states[-1].state)

        await wait_for(seen)

    def heard(self, win, source: str) -> dict[str, int]:
        return {rx: got.get(source, 0) for rx, got in win.items() if rx != source}

    async def close(self):
        for c in self.clients.values():
            await c.close()


async def test_mute_piece_self_mute_and_co_facilitator_through_the_sfu(tmp_path):
    async with VoiceServer(tmp_path / "data", group_facilitator_grace_s=2.0) as server:
        world = build_meeting(server.app, server.base_url, members=3)
        m = Meeting(world)
        for who, f in (("Sage", 300), ("Cedar", 500), ("M1", 700), ("M2", 900), ("M3", 1100)):
            await m.add(who, f)
        try:
            await wait_for(lambda: all(len(g) > 200 for g in m.ledger.got.values()), 25)
            win = await m.window(heard=tuple(m.clients))
            for src in m.clients:
                assert all(n > HEARD for n in m.heard(win, src).values()), (src, win)

            sage, cedar = m.clients["Sage"], m.clients["Cedar"]
            # a facilitator mutes M1: its frames reach no one
            await sage._send(sig.Mute(m.pid("M1"), True))
            await m.applied("Sage", lambda s: m.pid("M1") in s["muted"])
            win = await m.window(heard=("Sage", "Cedar", "M2", "M3"))
            assert set(m.heard(win, "M1").values()) == {0}, win
            assert all(n > HEARD for n in m.heard(win, "M2").values())
            # the member sees it, cannot unmute, and can ask to speak
            await wait_for(lambda: any(m.pid("M1") in s.state["muted"]
                                       for s in m.messages("M1", sig.Moderation)))
            await m.clients["M1"]._send(sig.SelfMute(False))
            await wait_for(lambda: any(e.code == "muted_by_facilitator"
                                       for e in m.messages("M1", sig.Error)))
            await m.clients["M1"]._send(sig.AskToSpeak())
            await wait_for(lambda: any(
                s.state["queue"] == [{"participant_id": m.pid("M1"), "asked_to_speak": True}]
                for s in m.messages("Sage", sig.Moderation)))
            await sage._send(sig.Allow(m.pid("M1")))
            await m.applied("Sage", lambda s: not s["muted"])
            win = await m.window(heard=("Sage", "Cedar", "M1", "M2", "M3"))
            assert all(n > HEARD for n in m.heard(win, "M1").values()), win

            # talking piece on, passed to M2: only M2 and the facilitators are forwarded
            await sage._send(sig.Piece(True, 180))
            await sage._send(sig.PiecePass(m.pid("M2")))
            await m.applied("Sage", lambda s: s["holder"] == m.pid("M2"))
            win = await m.window(heard=("Sage", "Cedar", "M2"))
            for src in ("M1", "M3"):
                assert set(m.heard(win, src).values()) == {0}, (src, win)
            for src in ("M2", "Sage", "Cedar"):
                assert all(n > HEARD for n in m.heard(win, src).values()), (src, win)
            state = m.messages("M3", sig.Moderation)[-1].state
            assert state["holder"] == m.pid("M2") and state["share_seconds"] == 180
            # the holder passes it back
            await m.clients["M2"]._send(sig.PieceReturn())
            await m.applied("Sage", lambda s: s["piece_on"] and s["holder"] is None)
            win = await m.window(heard=("Sage", "Cedar", "M1", "M3"))
            assert set(m.heard(win, "M2").values()) == {0}, win
            await sage._send(sig.Piece(False))
            await m.applied("Sage", lambda s: not s["piece_on"])

            # a pause holds every member at the SFU (facilitators still heard); resuming
            # restores the mutes as they were (M1, muted before, stays muted)
            await sage._send(sig.Mute(m.pid("M1"), True))
            await m.applied("Sage", lambda s: m.pid("M1") in s["muted"])
            await sage._send(sig.Pause(True))
            await m.applied("Sage", lambda s: s["paused"])
            await wait_for(lambda: any(s.state["paused"] for s in m.messages("M3", sig.Moderation)))
            win = await m.window(heard=("Sage", "Cedar"))
            for src in ("M1", "M2", "M3"):
                assert set(m.heard(win, src).values()) == {0}, (src, win)
            await m.clients["M2"]._send(sig.Pause(False))  # a member cannot end it
            await wait_for(lambda: any(e.code == "forbidden" for e in m.messages("M2", sig.Error)))
            await sage._send(sig.Pause(False))
            await m.applied("Sage", lambda s: not s["paused"] and m.pid("M1") in s["muted"])
            win = await m.window(heard=("Sage", "Cedar", "M2", "M3"))
            assert set(m.heard(win, "M1").values()) == {0}, win
            await sage._send(sig.Allow(m.pid("M1")))
            await m.applied("Sage", lambda s: not s["muted"])

            # self-mute: visible to everyone, and not forwarded
            await m.clients["M3"]._send(sig.SelfMute(True))
            await m.applied("Sage", lambda s: m.pid("M3") in s["self_muted"])
            win = await m.window(heard=("Sage", "Cedar", "M1", "M2"))
            assert set(m.heard(win, "M3").values()) == {0}, win
            for who in ("Sage", "Cedar", "M1", "M2"):
                assert any(s.participant_id == m.pid("M3") and s.muted
                           for s in m.messages(who, sig.SelfMuted)), who
            assert all(n > HEARD for n in m.heard(win, "M1").values()), win

            # the lead drops out: the co-facilitator keeps control
            await sage.close()
            del m.clients["Sage"]
            await cedar._send(sig.MuteAll())
            await m.applied("Cedar", lambda s: m.pid("M2") in s["muted"])
            win = await m.window(heard=("Cedar", "M3"))
            for src in ("M1", "M2"):
                assert set(m.heard(win, src).values()) == {0}, (src, win)
            assert all(n > HEARD for n in m.heard(win, "Cedar").values()), win
            assert not m.messages("M1", sig.Notice)  # a facilitator is still here

            # no facilitator at all: members are told, then the meeting ends gently
            await cedar.close()
            del m.clients["Cedar"]
            await wait_for(lambda: any(n.code == "no_facilitator"
                                       for n in m.messages("M1", sig.Notice)), 5)
            await wait_for(lambda: all(m.clients[w].ended.is_set()
                                       for w in ("M1", "M2", "M3")), 10)
            assert {m.clients[w].summary.ended for w in ("M1", "M2", "M3")} == {
                "no_facilitator"}
            db = world.db()
            try:
                row = meetings.meeting_for_room(db, world.room_id)
            finally:
                db.close()
            assert row["status"] == "ended"
        finally:
            await m.close()


async def test_remove_rekeys_ban_blocks_every_token_and_lock_refuses_new_people(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        world = build_meeting(server.app, server.base_url, members=5, co=False)
        m = Meeting(world)
        for who, f in (("Sage", 300), ("M1", 700), ("M2", 900), ("M3", 1100)):
            await m.add(who, f)
        removed = m.clients["M1"]
        m.ledger.keep_payloads = True
        try:
            await wait_for(lambda: all(len(g) > 150 for g in m.ledger.got.values()), 25)
            sage = m.clients["Sage"]
            old_gen = {w: m.clients[w].manager.sender.key.generation
                       for w in ("Sage", "M2", "M3")}
            receiver = removed.manager.receiver

            await sage._send(sig.Remove(m.pid("M1")))
            await wait_for(lambda: removed.ended.is_set())
            assert removed.summary.ended == "removed"
            # everyone left moves to a new key generation
            await wait_for(lambda: all(m.clients[w].manager.sender.key.generation > g
                                       for w, g in old_gen.items()))
            cut = time.monotonic()  # from here on, frames are sent under the new keys

            def after():
                return [p for rx, t, p in m.ledger.payloads if t > cut and rx != "M1"]

            await wait_for(lambda: len(after()) > 100, CATCH_UP_S + 5)
            after = after()
            # the SFU sends the removed member nothing sent after removal...
            assert sum(m.ledger.heard("M1", tx, cut, time.monotonic())
                       for tx in ("Sage", "M2", "M3")) == 0
            # ...and even given every such frame, its keys open none of them
            opened = 0
            for p in after:
                try:
                    receiver.decrypt(p)
                    opened += 1
                except SFrameError:
                    pass
            assert opened == 0, "the removed member decrypted frames sent after removal"
            # removed: turned away from this meeting, no new link
            db = world.db()
            try:
                with pytest.raises(Exception) as exc:
                    meetings.join_link(db, world.users["M1"], world.group_id, world.key,
                                       actor=Actor.system())
                assert getattr(exc.value, "code", "") == "not_admitted"
            finally:
                db.close()

            # ban for the meeting, and for the group: no token of that membership gets in
            await sage._send(sig.Ban(m.pid("M2"), "meeting"))
            await sage._send(sig.Ban(m.pid("M3"), "group"))
            await wait_for(lambda: m.clients["M2"].ended.is_set()
                           and m.clients["M3"].ended.is_set())
            assert m.clients["M2"].summary.ended == m.clients["M3"].summary.ended == "banned"
            for who in ("M2", "M3"):
                with pytest.raises(ConnectionError) as exc:
                    await Peer(raw_token(world, who)).start()
                assert str(exc.value) == "banned", who

            # lock: a valid new token is refused, and the lobby says so
            url = world.link("M4")  # a valid link, got before the lock
            await sage._send(sig.Lock(True))
            await wait_for(lambda: m.messages("Sage", sig.Moderation)[-1].state["locked"])
            with pytest.raises(ConnectionError) as exc:
                await Peer(url).start()
            assert str(exc.value) == "locked"
            db = world.db()
            try:
                lobby = meetings.state(db, world.users["M5"], world.group_id, world.key)
            finally:
                db.close()
            assert lobby["locked"] and "locked" in lobby["message"]
            db = world.db()
            try:  # and while locked the lobby hands out no link: the member waits
                assert meetings.join_link(db, world.users["M5"], world.group_id, world.key,
                                          actor=Actor.system()) is None
            finally:
                db.close()
            await sage._send(sig.Lock(False))
            await wait_for(lambda: not m.messages("Sage", sig.Moderation)[-1].state["locked"])
            m4 = await Peer(url).start()  # the same link works once unlocked

            # send back to the lobby: they wait to be let in again
            await sage._send(sig.SendToLobby(m4.participant_id))
            ended = await m4.wait(lambda x: isinstance(x, sig.Ended))
            assert ended.reason == "sent_to_lobby"
            db = world.db()
            try:
                me = meetings.state(db, world.users["M4"], world.group_id, world.key)["me"]
            finally:
                db.close()
            assert me["status"] == "waiting"
            await m4.close()
        finally:
            await m.close()
