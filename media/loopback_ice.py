"""ICE gathering policy for Haven's peer connections (server and test clients).

aioice gathers host candidates on every interface *except* 127.0.0.1 and aiortc
adds Google's STUN server when ``iceServers`` is None. Haven needs both under
control:

* tests and the benchmark run on loopback only;
* production may allow all interfaces, or a fixed list of addresses, and its own
  STUN/TURN servers.

``IcePolicy`` describes that. Gathering happens inside
``RTCPeerConnection.setLocalDescription``; run it inside ``policy.gathering()``
(a context manager) and aioice's host-address lookup, wrapped once per process,
follows the policy through a context variable. Code that does not enter the
context (other peer connections in the same process) is unaffected.

    policy = IcePolicy.loopback()
    pc = policy.new_peer_connection()
    with policy.gathering():
        await pc.setLocalDescription(await pc.createOffer())
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from . import aiortc_hooks

LOOPBACK = "127.0.0.1"

_host_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "haven_ice_host_addresses", default=None
)
_installed_original = None


def _policy_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    allowed = _host_addresses.get()
    if allowed is None:
        return _installed_original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return list(allowed)


def install() -> None:
    """Wrap aioice's host-address lookup once (idempotent)."""
    global _installed_original
    current = aiortc_hooks.host_addresses_function()
    if current is _policy_host_addresses:
        return
    _installed_original = current
    aiortc_hooks.set_host_addresses_function(_policy_host_addresses)


@dataclass(frozen=True)
class IcePolicy:
    """Where ICE may gather candidates and which servers it may use.

    host_addresses: None = aioice's default (every interface but loopback);
                    a tuple = exactly these local addresses.
    ice_servers:    STUN/TURN servers (empty = none; never aiortc's Google default).
    loopback_only:  also drop remote candidates that are not 127.0.0.1.
    """

    host_addresses: tuple[str, ...] | None = None
    ice_servers: Sequence[RTCIceServer] = field(default_factory=tuple)
    loopback_only: bool = False

    @classmethod
    def loopback(cls) -> IcePolicy:
        return cls(host_addresses=(LOOPBACK,), ice_servers=(), loopback_only=True)

    @classmethod
    def default(cls, ice_servers: Sequence[RTCIceServer] = ()) -> IcePolicy:
        return cls(host_addresses=None, ice_servers=tuple(ice_servers))

    def configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=list(self.ice_servers))

    def new_peer_connection(self) -> RTCPeerConnection:
        install()
        return RTCPeerConnection(self.configuration())

    @contextlib.contextmanager
    def gathering(self) -> Iterator[None]:
        install()
        token = _host_addresses.set(self.host_addresses)
        try:
            yield
        finally:
            _host_addresses.reset(token)

    def filter_remote_sdp(self, sdp: str) -> str:
        """With loopback_only, drop every remote candidate that is not 127.0.0.1."""
        if not self.loopback_only:
            return sdp
        out = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                parts = line[len("a=candidate:"):].split()
                if len(parts) < 6 or parts[4] != LOOPBACK:
                    continue
            out.append(line)
        return "\r\n".join(out) + "\r\n"


    def guard(self, transceiver) -> None:
        """With loopback_only, ignore connectivity checks from anywhere but 127.0.0.1.

        Filtering the SDP is not enough: a peer's checks sent from another local address
        would be learnt as peer-reflexive candidates (RFC 8445 7.3.1.3) and answered there.
        Call after setLocalDescription, once the ICE connection exists."""
        if not self.loopback_only:
            return
        conn = aiortc_hooks.ice_connection(aiortc_hooks.dtls_transport(transceiver))
        original = conn.request_received
        if getattr(original, "_haven_loopback_guard", False):
            return

        def request_received(message, addr, protocol):
            if addr[0] != LOOPBACK:
                return  # dropped: never learn or answer a non-loopback address
            original(message, addr, protocol)

        request_received._haven_loopback_guard = True
        conn.request_received = request_received


def candidate_addresses(sdp: str) -> list[str]:
    """Addresses of every a=candidate line (for checks in tests)."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line[len("a=candidate:"):].split()
            if len(parts) > 5:
                out.append(parts[4])
    return out
