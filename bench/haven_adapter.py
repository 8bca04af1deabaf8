"""sfu-bench signaling adapter for Haven's SFU (bench/haven_sfu_server.py).

Works with this folder's copy of the load generator (bench/sfubench) and with the
shared harness's (../shared/tools/sfu-bench/sfubench): it imports whichever
``sfubench`` package is first on sys.path.

Load shape mapping (same as the Janus/relay adapters: two peer connections per
conference peer): a publisher joins the Haven room as a participant whose offer
has only m-line 0 (sendonly); a subscriber joins as a listen-only participant
(m-line 0 inactive + one recvonly slot per wanted feed) with the *same sender_id*
as the one publisher it must not hear, so Haven's room logic, not the adapter,
decides who receives whom. The slot map returned by the server gives {mid: feed}.

  POST /publish   {room, display, sdp}           -> {feed, pc, sdp, type}
  POST /subscribe {room, feeds, sdp}             -> {pc, sdp, type, mids: {mid: feed}}
  POST /close     {pcs}                          -> {closed}
"""

from __future__ import annotations

import random
import string

import aiohttp
from aiortc import RTCPeerConnection
from sfubench.adapters import (
    TIMEOUT_S,
    SfuAdapter,
    _check_loopback_url,
    _local_description,
    _set_remote,
)
from sfubench.media import opus_capabilities


class HavenAdapter(SfuAdapter):
    name = "haven"

    def __init__(self, url: str = "http://127.0.0.1:8090") -> None:
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
        up = pc.addTransceiver("audio", direction="inactive")  # m-line 0: no upstream
        up.setCodecPreferences(opus_capabilities())
        for _ in feeds:
            t = pc.addTransceiver("audio", direction="recvonly")
            t.setCodecPreferences(opus_capabilities())
        offer = await _local_description(pc, offer=True)
        resp = await self._post("/subscribe", {"room": room, "feeds": feeds,
                                               "sdp": offer.sdp, "type": offer.type})
        self.pcs.append(resp["pc"])
        await _set_remote(pc, resp["sdp"], resp["type"])
        return dict(resp["mids"])

    async def close(self) -> None:
        if self.http is None:
            return
        try:
            await self._post("/close", {"pcs": self.pcs})
        except Exception:
            pass
        await self.http.close()
        self.http = None
