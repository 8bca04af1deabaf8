"""Signaling adapters: how load.py talks to one kind of SFU.

The interface is deliberately small. A new SFU needs one subclass of
`SfuAdapter` and one line in `ADAPTERS`. load.py owns the RTCPeerConnections
(created by sfubench.loopback.new_pc(), already limited to 127.0.0.1) and the
media; an adapter only does signaling:

  open()                          connect / create a session
  create_room(index, publishers)  -> opaque room object
  publish(room, pc, display)      pc has one sendonly Opus transceiver with our
                                  track; do offer/answer; -> feed id (str)
  subscribe(room, pc, feeds)      make pc receive every feed in `feeds` (adapter
                                  adds transceivers or answers a server offer);
                                  -> {mid: feed id}
  close()                         hang up / destroy rooms / end the session

Rules for every adapter: only talk to 127.0.0.1, pass every remote SDP through
loopback.only_loopback_candidates() and every local one through
loopback.assert_loopback_sdp(), and bound every wait with a timeout.
"""

from __future__ import annotations

import abc
import asyncio
import random
import string
import time
import urllib.parse
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from . import loopback
from .media import opus_capabilities

TIMEOUT_S = 20.0


def _check_loopback_url(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"{url}: this harness only talks to 127.0.0.1")
    return url.rstrip("/")


async def _local_description(pc: RTCPeerConnection, offer: bool) -> RTCSessionDescription:
    desc = await (pc.createOffer() if offer else pc.createAnswer())
    await pc.setLocalDescription(desc)  # aiortc gathers all candidates here
    loopback.assert_loopback_sdp(pc.localDescription.sdp)
    return pc.localDescription


async def _set_remote(pc: RTCPeerConnection, sdp: str, type_: str) -> None:
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=loopback.only_loopback_candidates(sdp), type=type_)
    )


class SfuAdapter(abc.ABC):
    name = "?"

    async def open(self) -> None:
        pass

    @abc.abstractmethod
    async def create_room(self, index: int, publishers: int) -> Any: ...

    @abc.abstractmethod
    async def publish(self, room: Any, pc: RTCPeerConnection, display: str) -> str: ...

    @abc.abstractmethod
    async def subscribe(self, room: Any, pc: RTCPeerConnection, feeds: list[str]) -> dict[str, str]: ...

    async def close(self) -> None:
        pass


# --------------------------------------------------------------------------
# Janus VideoRoom over the Janus HTTP API (REST + long-poll)
# --------------------------------------------------------------------------


class JanusError(RuntimeError):
    pass


class JanusAdapter(SfuAdapter):
    """One Janus session per load worker; one handle per PeerConnection.

    publisher:  attach -> message {request: joinandconfigure, ptype: publisher} + jsep offer
                <- event {videoroom: joined, id: feed} + jsep answer
    subscriber: attach -> message {request: join, ptype: subscriber, streams: [{feed}...]}
                <- event {videoroom: attached, streams: [{mid, feed_id}]} + jsep offer
                -> message {request: start} + jsep answer  <- event {started: ok}
    """

    name = "janus"

    def __init__(self, url: str = "http://127.0.0.1:8088/janus") -> None:
        self.url = _check_loopback_url(url)
        self.http: aiohttp.ClientSession | None = None
        self.session_id: int | None = None
        self.pending: dict[str, asyncio.Future] = {}
        self.handle_events: dict[int, list[str]] = {}
        self.rooms: list[int] = []
        self.handles: list[int] = []
        self.poller: asyncio.Task | None = None
        self.hangups = 0

    @staticmethod
    def _tx() -> str:
        return "".join(random.choices(string.ascii_letters, k=12))

    async def _post(self, path: str, body: dict, wait_event: bool = False) -> dict:
        tx = self._tx()
        body = dict(body, transaction=tx)
        fut = None
        if wait_event:
            fut = asyncio.get_running_loop().create_future()
            self.pending[tx] = fut
        try:
            async with self.http.post(self.url + path, json=body) as r:
                resp = await r.json(content_type=None)
            kind = resp.get("janus")
            if kind == "error":
                raise JanusError(f"{body.get('janus')}: {resp.get('error')}")
            if not wait_event:
                return resp
            if kind != "ack":
                raise JanusError(f"expected ack, got {resp}")
            return await asyncio.wait_for(fut, TIMEOUT_S)
        finally:
            self.pending.pop(tx, None)

    async def _poll(self) -> None:
        url = f"{self.url}/{self.session_id}"
        while True:
            try:
                async with self.http.get(url, params={"maxev": "50", "rid": str(int(time.time() * 1000))},
                                         timeout=aiohttp.ClientTimeout(total=40)) as r:
                    data = await r.json(content_type=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.2)
                continue
            for ev in data if isinstance(data, list) else [data]:
                self._dispatch(ev)

    def _dispatch(self, ev: dict) -> None:
        kind = ev.get("janus")
        tx = ev.get("transaction")
        if kind == "event" and tx in self.pending:
            fut = self.pending[tx]
            if not fut.done():
                fut.set_result(ev)
            return
        sender = ev.get("sender")
        if sender is not None and kind in ("webrtcup", "hangup", "media", "slowlink", "detached"):
            self.handle_events.setdefault(sender, []).append(kind)
            if kind == "hangup":
                self.hangups += 1

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                                          connector=aiohttp.TCPConnector(limit=64))
        resp = await self._post("", {"janus": "create"})
        self.session_id = resp["data"]["id"]
        self.poller = asyncio.ensure_future(self._poll())

    async def _attach(self) -> int:
        resp = await self._post(f"/{self.session_id}", {"janus": "attach", "plugin": "janus.plugin.videoroom"})
        hid = resp["data"]["id"]
        self.handles.append(hid)
        return hid

    async def _message(self, hid: int, body: dict, jsep: dict | None = None, wait_event: bool = True) -> dict:
        msg = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        ev = await self._post(f"/{self.session_id}/{hid}", msg, wait_event=wait_event)
        data = ev.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data.get('error')} ({data.get('error_code')})")
        return ev

    async def create_room(self, index: int, publishers: int) -> int:
        if not hasattr(self, "_admin_handle"):
            self._admin_handle = await self._attach()
        room = random.randint(10**8, 2 * 10**9)
        await self._message(self._admin_handle, {
            "request": "create", "room": room, "permanent": False, "is_private": True,
            "description": f"sfu-bench {index}", "publishers": max(publishers, 1),
            "audiocodec": "opus", "notify_joining": False,
        }, wait_event=False)
        self.rooms.append(room)
        return room

    async def publish(self, room: int, pc: RTCPeerConnection, display: str) -> str:
        hid = await self._attach()
        offer = await _local_description(pc, offer=True)
        ev = await self._message(hid, {"request": "joinandconfigure", "ptype": "publisher",
                                       "room": room, "display": display},
                                 jsep={"type": offer.type, "sdp": offer.sdp})
        jsep = ev.get("jsep")
        if not jsep:
            raise JanusError(f"publisher got no answer: {ev}")
        await _set_remote(pc, jsep["sdp"], jsep["type"])
        return str(ev["plugindata"]["data"]["id"])

    async def subscribe(self, room: int, pc: RTCPeerConnection, feeds: list[str]) -> dict[str, str]:
        hid = await self._attach()
        ev = None
        for attempt in range(20):  # a feed may not be "active" until its ICE/DTLS is up
            try:
                ev = await self._message(hid, {"request": "join", "ptype": "subscriber", "room": room,
                                               "streams": [{"feed": int(f)} for f in feeds],
                                               "use_msid": False})
                break
            except JanusError as exc:
                if "No such feed" not in str(exc) and "not active" not in str(exc) or attempt == 19:
                    raise
                await asyncio.sleep(0.25)
        jsep = ev.get("jsep")
        if not jsep:
            raise JanusError(f"subscriber got no offer: {ev}")
        mids = {str(s["mid"]): str(s["feed_id"]) for s in ev["plugindata"]["data"].get("streams", [])
                if s.get("feed_id") is not None}
        await _set_remote(pc, jsep["sdp"], jsep["type"])
        answer = await _local_description(pc, offer=False)
        await self._message(hid, {"request": "start"}, jsep={"type": answer.type, "sdp": answer.sdp})
        return mids

    async def close(self) -> None:
        if self.http is None:
            return
        try:
            for hid in self.handles:
                if hid != getattr(self, "_admin_handle", None):
                    try:
                        await self._post(f"/{self.session_id}/{hid}", {"janus": "detach"})
                    except Exception:
                        pass
            for room in self.rooms:
                try:
                    await self._message(self._admin_handle, {"request": "destroy", "room": room},
                                        wait_event=False)
                except Exception:
                    pass
            try:
                await self._post(f"/{self.session_id}", {"janus": "destroy"})
            except Exception:
                pass
        finally:
            if self.poller:
                self.poller.cancel()
            await self.http.close()
            self.http = None


# --------------------------------------------------------------------------
# The aiortc MediaRelay baseline (relay_server.py): client offers, one POST each
# --------------------------------------------------------------------------


class AiortcRelayAdapter(SfuAdapter):
    """POST /publish {room, sdp} -> {feed, pc, sdp};  POST /subscribe {room,
    feeds, sdp (one recvonly m-line per feed)} -> {pc, sdp};  POST /close {pcs}."""

    name = "aiortc-relay"

    def __init__(self, url: str = "http://127.0.0.1:8089") -> None:
        self.url = _check_loopback_url(url)
        self.http: aiohttp.ClientSession | None = None
        self.pcs: list[str] = []
        self.nonce = "".join(random.choices(string.ascii_lowercase, k=6))

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))

    async def _post(self, path: str, body: dict) -> dict:
        async with self.http.post(self.url + path, json=body) as r:
            resp = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{path}: HTTP {r.status}: {resp}")
            return resp

    async def create_room(self, index: int, publishers: int) -> str:
        return f"{self.nonce}-{index}"

    async def publish(self, room: str, pc: RTCPeerConnection, display: str) -> str:
        offer = await _local_description(pc, offer=True)
        resp = await self._post("/publish", {"room": room, "display": display,
                                             "sdp": offer.sdp, "type": offer.type})
        self.pcs.append(resp["pc"])
        await _set_remote(pc, resp["sdp"], resp["type"])
        return resp["feed"]

    async def subscribe(self, room: str, pc: RTCPeerConnection, feeds: list[str]) -> dict[str, str]:
        transceivers = []
        for _ in feeds:
            t = pc.addTransceiver("audio", direction="recvonly")
            t.setCodecPreferences(opus_capabilities())
            transceivers.append(t)
        offer = await _local_description(pc, offer=True)
        resp = await self._post("/subscribe", {"room": room, "feeds": feeds,
                                               "sdp": offer.sdp, "type": offer.type})
        self.pcs.append(resp["pc"])
        await _set_remote(pc, resp["sdp"], resp["type"])
        return {t.mid: f for t, f in zip(transceivers, feeds)}

    async def close(self) -> None:
        if self.http is None:
            return
        try:
            await self._post("/close", {"pcs": self.pcs})
        except Exception:
            pass
        await self.http.close()
        self.http = None


ADAPTERS: dict[str, type[SfuAdapter]] = {
    "janus": JanusAdapter,
    "aiortc-relay": AiortcRelayAdapter,
}


def make_adapter(name: str, url: str | None) -> SfuAdapter:
    cls = ADAPTERS[name]
    return cls(url) if url else cls()


# Haven (added for Haven's bench; the class lives in bench/haven_adapter.py so the
# shared harness can use it too)
def _register_haven() -> None:
    import os
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.append(here)
    from haven_adapter import HavenAdapter

    ADAPTERS["haven"] = HavenAdapter


_register_haven()
