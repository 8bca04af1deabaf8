"""ICE policy for Haven's peer connections: where candidates are gathered, which ports they
use, which address is announced, and which STUN/TURN servers help.

aioice gathers host candidates on every interface *except* 127.0.0.1, on random ports, and
aiortc adds Google's STUN server when ``iceServers`` is None. Haven needs all of that under
control:

* ``IcePolicy.server()`` (what ``haven serve`` runs): every interface **including
  loopback**, so a client on the same machine (a join URL on 127.0.0.1, e.g. ``haven call``
  right after ``make serve``) and browsers on the network can both connect. Optionally a
  public address to announce (a server behind 1:1 NAT: cloud VM, container) and a UDP port
  range (so a firewall can open a known range).
* ``IcePolicy.client(join_host, ice_servers)``: what the Python client uses. A join URL on
  this machine (127.0.0.1, ::1, localhost) keeps media on loopback; any other gathers every
  interface but loopback and uses the STUN/TURN servers the server handed out.
* ``IcePolicy.loopback()``: tests and benchmarks (only 127.0.0.1, and checks from anywhere
  else are ignored).

Gathering happens inside ``RTCPeerConnection.setLocalDescription``; run it inside
``policy.gathering()`` and aioice's host-address lookup (wrapped once per process) and the
event loop's ``create_datagram_endpoint`` (wrapped once per loop, for the port range) follow
the policy through a context variable. Code outside the context is unaffected.

    policy = IcePolicy.server(public_address="203.0.113.7", port_range=(40000, 40199))
    pc = policy.new_peer_connection()
    with policy.gathering():
        await pc.setLocalDescription(await pc.createAnswer())
    sdp = policy.announce(pc.localDescription.sdp)   # adds the public address
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from . import aiortc_hooks, consent

LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_active: contextvars.ContextVar[IcePolicy | None] = contextvars.ContextVar(
    "haven_ice_policy", default=None
)
_installed_original = None


def _policy_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    policy = _active.get()
    if policy is None:
        return _installed_original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if policy.host_addresses is not None:
        return list(policy.host_addresses)
    found = _installed_original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    if policy.include_loopback and use_ipv4 and LOOPBACK not in found:
        found = [*found, LOOPBACK]
    return found


def local_addresses() -> list[str]:
    """Every local IPv4 address aioice would gather on (loopback excluded)."""
    install()
    return _installed_original(use_ipv4=True, use_ipv6=False)


def install() -> None:
    """Wrap aioice's host-address lookup and its consent freshness, and quiet aiortc's
    connect task for a connection closed while connecting, once (idempotent)."""
    global _installed_original
    consent.install()
    aiortc_hooks.quiet_connect_after_close()
    current = aiortc_hooks.host_addresses_function()
    if current is _policy_host_addresses:
        return
    _installed_original = current
    aiortc_hooks.set_host_addresses_function(_policy_host_addresses)


def _install_port_range(loop: asyncio.AbstractEventLoop) -> None:
    """Make this loop's UDP binds follow the active policy's port range (idempotent)."""
    original = aiortc_hooks.datagram_endpoint_function(loop)
    if getattr(original, "_haven_port_range", False):
        return

    async def create_datagram_endpoint(protocol_factory, local_addr=None, **kw):
        policy = _active.get()
        rng = policy.port_range if policy is not None else None
        if rng is None or local_addr is None or local_addr[1] != 0:
            return await original(protocol_factory, local_addr=local_addr, **kw)
        low, high = rng
        count = high - low + 1
        start = random.randrange(count)
        last_error: OSError | None = None
        for i in range(count):
            port = low + (start + i) % count
            try:
                return await original(protocol_factory, local_addr=(local_addr[0], port), **kw)
            except OSError as exc:  # in use: try the next one
                last_error = exc
        raise OSError(f"no free UDP port in {low}-{high} on {local_addr[0]}") from last_error

    create_datagram_endpoint._haven_port_range = True
    aiortc_hooks.set_datagram_endpoint_function(loop, create_datagram_endpoint)


@dataclass(frozen=True)
class IcePolicy:
    """Where ICE may gather candidates, on which ports, what it announces, which servers help.

    host_addresses:   None = every interface (see include_loopback); a tuple = exactly these.
    include_loopback: with host_addresses None, also gather on 127.0.0.1.
    ice_servers:      STUN/TURN servers (empty = none; never aiortc's Google default).
    loopback_only:    also drop remote candidates, and checks, that are not 127.0.0.1.
    public_address:   announced (as a server-reflexive candidate, same port) beside every
                      non-loopback host candidate: the address of a 1:1 NAT in front of us.
    port_range:       (low, high) inclusive: every host candidate binds a port in it.
    """

    host_addresses: tuple[str, ...] | None = None
    include_loopback: bool = False
    ice_servers: Sequence[RTCIceServer] = field(default_factory=tuple)
    loopback_only: bool = False
    public_address: str | None = None
    port_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.public_address is not None:
            addr = ipaddress.ip_address(self.public_address)  # ValueError if not an address
            if addr.version != 4:
                raise ValueError("the public address must be an IPv4 address")
        if self.port_range is not None:
            low, high = self.port_range
            if not 1024 <= low <= high <= 65535:
                raise ValueError("the UDP port range must be within 1024-65535, low <= high")

    @classmethod
    def loopback(cls) -> IcePolicy:
        return cls(host_addresses=(LOOPBACK,), loopback_only=True)

    @classmethod
    def server(cls, *, public_address: str | None = None,
               port_range: tuple[int, int] | None = None) -> IcePolicy:
        """What ``haven serve`` uses: every interface, loopback included."""
        return cls(include_loopback=True, public_address=public_address, port_range=port_range)

    @classmethod
    def client(cls, join_host: str, ice_servers: Sequence[RTCIceServer] = ()) -> IcePolicy:
        """What the Python client uses for a server at ``join_host``."""
        if join_host.lower().strip("[]") in LOOPBACK_HOSTS:
            # The server is on this machine and (IcePolicy.server) gathers on loopback:
            # keep the media there, whatever other interfaces this machine has.
            return cls.loopback()
        return cls(ice_servers=tuple(ice_servers))

    def with_ice_servers(self, ice_servers: Sequence[RTCIceServer]) -> IcePolicy:
        if self.loopback_only:
            return self  # relays are of no use on loopback
        return IcePolicy(self.host_addresses, self.include_loopback, tuple(ice_servers),
                         self.loopback_only, self.public_address, self.port_range)

    def configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=list(self.ice_servers))

    def new_peer_connection(self) -> RTCPeerConnection:
        install()
        return RTCPeerConnection(self.configuration())

    @contextlib.contextmanager
    def gathering(self) -> Iterator[None]:
        install()
        if self.port_range is not None:
            _install_port_range(asyncio.get_running_loop())
        token = _active.set(self)
        try:
            yield
        finally:
            _active.reset(token)

    def announce(self, sdp: str) -> str:
        """The local description as sent: with a public address, add a server-reflexive
        candidate (public address, same port) after every non-loopback host candidate."""
        if self.public_address is None:
            return sdp
        out: list[str] = []
        seen: set[tuple[str, int]] = set()
        for line in sdp.splitlines():
            out.append(line)
            if line.startswith("m="):
                seen = set()  # every m-section lists the (bundled) candidates again
            if not line.startswith("a=candidate:"):
                continue
            parts = line[len("a=candidate:"):].split()
            if len(parts) < 8 or parts[7] != "host" or parts[2].lower() != "udp":
                continue
            host, port, component = parts[4], int(parts[5]), int(parts[1])
            if host == LOOPBACK or ":" in host or (self.public_address, port) in seen:
                continue
            seen.add((self.public_address, port))
            out.append(
                f"a=candidate:{candidate_foundation('srflx', 'udp', self.public_address)} "
                f"{component} udp {candidate_priority(component, 'srflx')} "
                f"{self.public_address} {port} typ srflx raddr {host} rport {port}")
        return "\r\n".join(out) + "\r\n"

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


def candidates(sdp: str) -> list[tuple[str, int]]:
    """(address, port) of every a=candidate line (for checks in tests)."""
    out = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line[len("a=candidate:"):].split()
            if len(parts) > 5:
                out.append((parts[4], int(parts[5])))
    return out


def candidate_addresses(sdp: str) -> list[str]:
    return [addr for addr, _ in candidates(sdp)]


def candidate_ports(sdp: str) -> list[int]:
    return [port for _, port in candidates(sdp)]
