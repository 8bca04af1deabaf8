"""Which of the STUN/TURN servers handed out in ``joined`` the Python client uses.

aiortc uses at most one STUN and one TURN server per peer connection (the first of each it
can parse). A browser gathers from all of them; the Python client has to choose. A network
that blocks UDP makes ``turn:...?transport=udp`` useless and only ``?transport=tcp`` or
``turns:`` work, so the client first checks, in parallel and briefly, which TURN servers it
can reach (UDP: a STUN Binding request, which TURN servers answer; TCP: a connection; TLS:
a handshake with certificate checks), and takes them in the server's order of preference.
After a failed connection it moves on to the next reachable one (``skip``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import struct

from aiortc import RTCIceServer

from . import signaling as sig
from .turn import IceUrlError, parse_ice_url

PROBE_TIMEOUT_S = 1.5
STUN_MAGIC = 0x2112A442


class _BindingProbe(asyncio.DatagramProtocol):
    def __init__(self, txid: bytes) -> None:
        self.txid = txid
        self.answered = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 20 and data[8:20] == self.txid and not self.answered.done():
            self.answered.set_result(True)

    def error_received(self, exc) -> None:
        pass


async def _probe_udp(host: str, port: int) -> bool:
    loop = asyncio.get_running_loop()
    txid = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + txid
    transport, probe = await loop.create_datagram_endpoint(
        lambda: _BindingProbe(txid), remote_addr=(host, port))
    try:
        for wait in (0.3, 0.5, PROBE_TIMEOUT_S - 0.8):
            transport.sendto(request)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(probe.answered), wait)
                return True
        return False
    finally:
        transport.close()


async def _probe_stream(host: str, port: int, tls: bool) -> bool:
    context = ssl.create_default_context() if tls else None
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context,
                                server_hostname=host if tls else None), PROBE_TIMEOUT_S)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def reachable(url: str) -> bool:
    """Whether the STUN/TURN server behind ``url`` answers from here (within ~1.5 s)."""
    try:
        u = parse_ice_url(url)
        if u.scheme == "turns":
            return await _probe_stream(u.host, u.port, tls=True)
        if u.transport == "tcp":
            return await _probe_stream(u.host, u.port, tls=False)
        return await _probe_udp(u.host, u.port)
    except (TimeoutError, OSError, ssl.SSLError, IceUrlError, ValueError):
        return False


async def choose_ice_servers(servers: tuple[sig.IceServer, ...] | list[sig.IceServer], *,
                             skip: int = 0) -> list[RTCIceServer]:
    """One STUN URL (the first) and one reachable TURN URL (the ``skip``-th, cycling), as
    aiortc RTCIceServer objects."""
    stun = [(s, u) for s in servers for u in s.urls if u.startswith("stun:")]
    turn = [(s, u) for s in servers for u in s.urls if u.startswith(("turn:", "turns:"))]
    out: list[RTCIceServer] = []
    if stun:
        out.append(RTCIceServer(urls=stun[0][1]))
    if turn:
        ok = await asyncio.gather(*(reachable(u) for _, u in turn))
        usable = [(s, u) for (s, u), good in zip(turn, ok, strict=True) if good]
        if usable:
            s, u = usable[skip % len(usable)]
            out.append(RTCIceServer(urls=u, username=s.username, credential=s.credential))
    return out
