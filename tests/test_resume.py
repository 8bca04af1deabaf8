"""Coming back after a network change: the same participant resumes its place (same ids,
same keys, same epoch) and nobody else re-keys; a lost connection's place is held briefly;
a membership change in between, or a stale epoch, makes it a normal rejoin. And the ICE
servers in `joined`: only for an accepted token, with TURN credentials that are never
logged."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest

from media import signaling as sig
from media.e2ee import IdentityKeys
from media.turn import IceServers, check_turn_credential
from media.voice_client import VoiceClient
from web import voice

from .test_voice_e2e import wait_for
from .voice_support import VoiceServer, band_share, tone

pytestmark = pytest.mark.slow


class Raw:
    """A bare signaling connection that speaks only what a test tells it to."""

    def __init__(self, server: VoiceServer, url: str, identity: IdentityKeys | None = None):
        self.server, self.url = server, url
        self.identity = identity or IdentityKeys.generate()
        self.got: list[dict] = []

    async def join(self, resume_epoch: int | None = None, offer: bool = True) -> dict:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.server.base_url + "/ws/signal",
                                                autoping=False)
        j = sig.parse_join_url(self.url)
        await self.ws.send_str(sig.Join(j.room_id, j.token, self.identity.card().to_dict(),
                                        resume_epoch=resume_epoch).to_json())
        joined = await self.next("joined", "error")
        if offer and joined["type"] == "joined":
            # a real offer, so the hub treats this as a media participant
            from aiortc import RTCPeerConnection
            self.pc = RTCPeerConnection()
            self.pc.addTransceiver("audio", direction="sendonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await self.ws.send_str(sig.Offer(self.pc.localDescription.sdp).to_json())
            await self.next("answer")
        return joined

    async def next(self, *types: str, timeout: float = 10) -> dict:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"closed waiting for {types}")
            data = json.loads(msg.data)
            self.got.append(data)
            if data["type"] in types:
                return data

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()

    async def vanish(self) -> None:
        """The network under it goes away: no close frame, the socket just dies."""
        self.ws._response.connection.transport.abort()
        if getattr(self, "pc", None):
            await self.pc.close()
        await self.session.close()


async def listener_and_raw(server: VoiceServer, count: int):
    """A real client `b` in a room, and a bare connection that joined it (urls[0])."""
    urls = server.invite(count)
    b = VoiceClient(urls[1], IdentityKeys.generate())
    await b.start()
    raw = Raw(server, urls[0])
    joined = await raw.join()
    await wait_for(lambda: joined["participant_id"] in b.members)
    return urls, b, raw, joined


async def rejoin(server: VoiceServer, raw: Raw, resume_epoch: int) -> dict:
    """The same person (token and identity) joins again, asking to resume."""
    again = Raw(server, raw.url, raw.identity)
    joined = await again.join(resume_epoch=resume_epoch, offer=False)
    await again.vanish()
    return joined


async def test_a_client_that_loses_its_connection_resumes_without_anyone_rekeying(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(2)
        seen_by_b: list[str] = []
        a = VoiceClient(urls[0], IdentityKeys.generate(), send_pcm=tone(500, 40))
        b = VoiceClient(urls[1], IdentityKeys.generate(), send_pcm=tone(1300, 40),
                        on_message=lambda d, t: seen_by_b.append(json.loads(t)["type"])
                        if d == "in" else None)
        await a.start()
        await b.start()
        await wait_for(lambda: a.summary.frames_received > 50 and b.summary.frames_received > 50)
        ids = (a.participant_id, a.sender_id, a.epoch)
        keys = (a.manager.sender.key.generation, b.manager.sender.key.generation)
        code = a.security_code
        seen_by_b.clear()
        a._ws._response.connection.transport.abort()  # the network under it is gone
        await wait_for(lambda: a.recoveries and a.recoveries[0].audio_at is not None, 20)
        heard = a.summary.frames_received
        await wait_for(lambda: a.summary.frames_received > heard + 50)
        assert a.recoveries[0].resumed is True
        assert (a.participant_id, a.sender_id, a.epoch) == ids
        assert (a.manager.sender.key.generation, b.manager.sender.key.generation) == keys
        assert a.security_code == code and not a.ended.is_set()
        assert "member_left" not in seen_by_b and "member_joined" not in seen_by_b
        assert "key" not in seen_by_b and "code_commit" not in seen_by_b
        assert "slots" in seen_by_b  # all it saw: a's voice moved to a new connection
        await a.close()
        await b.close()
    assert band_share(a.mixer.pcm16(), 1300) > 0.3 and band_share(b.mixer.pcm16(), 500) > 0.3


async def test_a_lost_place_is_held_then_given_up(tmp_path, monkeypatch):
    monkeypatch.setattr(voice, "RESUME_GRACE_S", 1.0)
    async with VoiceServer(tmp_path / "data") as server:
        _, b, raw, joined = await listener_and_raw(server, 2)
        pid = joined["participant_id"]
        await raw.vanish()
        await asyncio.sleep(0.5)
        assert pid in b.members  # held: no member_left yet
        await wait_for(lambda: pid not in b.members, 10)  # ... until the grace ran out
        # coming back now is an ordinary rejoin: the others re-key for it
        assert (await rejoin(server, raw, joined["epoch"]))["resumed"] is False
        await b.close()


async def test_a_membership_change_while_held_ends_the_hold(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        urls, b, raw, joined = await listener_and_raw(server, 3)
        await raw.vanish()
        await asyncio.sleep(0.3)
        c = VoiceClient(urls[2], IdentityKeys.generate())
        await c.start()  # someone new: the held one cannot take part in the key exchange
        await wait_for(lambda: joined["participant_id"] not in b.members)
        assert joined["participant_id"] not in c.members
        j = await rejoin(server, raw, joined["epoch"])
        assert j["resumed"] is False and j["epoch"] > joined["epoch"]
        await b.close()
        await c.close()


async def test_a_membership_change_ends_every_hold_at_once(tmp_path, caplog):
    """Two places held at once, then someone new: both holds end, the newcomer gets in
    (dropping one held place used to drop the other under the first's loop, which then
    failed on it and refused the newcomer's join)."""
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(4)
        b = VoiceClient(urls[0], IdentityKeys.generate())
        await b.start()
        raws = [Raw(server, url) for url in urls[1:3]]
        pids = [(await raw.join())["participant_id"] for raw in raws]
        await wait_for(lambda: all(pid in b.members for pid in pids))
        for raw in raws:
            await raw.vanish()
        await asyncio.sleep(0.3)  # both held now
        assert all(pid in b.members for pid in pids)
        c = VoiceClient(urls[3], IdentityKeys.generate())
        with caplog.at_level(logging.ERROR):
            await c.start()
            await wait_for(lambda: not any(pid in b.members for pid in pids), 10)
        assert c.participant_id in b.members and b.participant_id in c.members
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        await b.close()
        await c.close()


async def test_a_resume_with_a_stale_epoch_is_a_normal_rejoin(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        _, b, raw, joined = await listener_and_raw(server, 2)
        assert (await rejoin(server, raw, joined["epoch"] - 1))["resumed"] is False
        assert (await raw.next("ended"))["reason"] == "replaced"
        await raw.vanish()
        await b.close()


async def test_ice_servers_reach_only_accepted_joins_and_are_never_logged(tmp_path, caplog):
    secret = "shared-with-coturn-only"
    servers = IceServers.from_urls(["stun:198.19.0.20", "turn:198.19.0.20?transport=tcp"], secret)
    caplog.set_level(logging.DEBUG)
    async with VoiceServer(tmp_path / "data", ice_servers=servers) as server:
        url = server.invite(1)[0]
        good = Raw(server, url)
        joined = await good.join(offer=False)
        turn = [s for s in joined["ice_servers"] if s["urls"][0].startswith("turn:")][0]
        assert turn["username"].endswith(":" + joined["participant_id"])
        assert check_turn_credential(secret, turn["username"], turn["credential"])
        assert {"urls": ["stun:198.19.0.20:3478"]} in joined["ice_servers"]
        j = sig.parse_join_url(url)
        bad = Raw(server, f"{j.base_url}/s/{j.room_id}#{'x' * 43}")
        refused = await bad.join(offer=False)
        assert refused["type"] == "error" and "ice_servers" not in json.dumps(bad.got)
        await bad.close()
        await good.close()
        logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
        assert secret not in logged and turn["credential"] not in logged


async def test_sending_on_a_dropped_connection_is_a_connection_error(tmp_path):
    """While a client reconnects it has no signaling socket: a send then is a
    ConnectionError (which start() and the reconnect loop handle), not an AttributeError."""
    async with VoiceServer(tmp_path / "data") as server:
        client = VoiceClient(server.invite(1)[0], IdentityKeys.generate())
        with pytest.raises(ConnectionError):
            await client._send(sig.Ping())
