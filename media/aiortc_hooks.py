"""Every private aiortc / aioice / asyncio detail the SFU relies on, in one place.

aiortc is pinned (==1.16.0, aioice ==0.13.0). ``tests/test_aiortc_hooks.py`` checks
each item below so an upgrade that moves one fails loudly instead of silently
breaking forwarding.

Private attributes and methods used (and why):

aiortc
  * ``RTCRtpTransceiver.receiver.transport`` (public) -> ``RTCDtlsTransport``; the
    transport's ``_rx_srtp`` / ``_tx_srtp`` (``pylibsrtp.Session``) are used to
    unprotect incoming RTP and protect forwarded RTP without going through
    ``RTCDtlsTransport._send_rtp`` (which is an ``async`` function and would cost
    a coroutine per packet).
  * ``RTCDtlsTransport.transport`` (public) -> ``RTCIceTransport``; its
    ``_connection`` is the ``aioice.Connection``.
  * ``RTCRtpTransceiver._codecs`` (negotiated codec list; [0] is the Opus payload
    type for that m-line).
  * ``RTCRtpSender._ssrc`` (the SSRC announced in our answer for a downstream slot).
  * ``RTCRtpSender._RTCRtpSender__ntp_timestamp``, ``__rtp_timestamp``,
    ``__packet_count``, ``__octet_count``: the counters aiortc's own RTCP task puts
    in its sender reports; the SFU refreshes them about once a second so the
    sender reports of forwarded streams are truthful.
  * ``RTCRtpReceiver._RTCRtpReceiver__remote_streams`` (dict ssrc ->
    ``StreamStatistics``): the SFU registers a duck-typed statistics object for the
    publisher's SSRC so aiortc's own receiver RTCP task sends receiver reports
    (loss, jitter, LSR/DLSR) for the stream it no longer sees packet by packet.
  * ``RTCRtpReceiver._handle_rtp_packet`` (overridden per *instance* on the
    upstream receiver): RTP that still takes aiortc's path (packets queued before
    the datagram hook is installed) goes to the forwarder, never to aiortc's
    jitter buffer and decoder.
  * ``aiortc.rtcrtpreceiver.StreamStatistics`` (its ``fraction_lost`` property and
    ``_expected_prior`` / ``_received_prior`` / ``_jitter_q4`` fields).

  * ``RTCPeerConnection._RTCPeerConnection__connect`` (the private coroutine aiortc runs
    with ``ensure_future`` after each description, result never read) and
    ``_RTCPeerConnection__isClosed``: wrapped on the class so that a peer connection closed
    while it was still connecting ends that task quietly, instead of asyncio logging
    "Task exception was never retrieved" (``InvalidStateError``) at error level.

aioice
  * ``Connection.request_received(message, addr, protocol)`` (public method, wrapped per
    *instance* by ``media.ice.IcePolicy.guard``): with loopback-only ICE, checks
    from any other address are dropped before aioice learns a peer-reflexive candidate.
  * ``Connection._protocols`` (list of ``StunProtocol``, one per local candidate):
    the SFU overrides ``datagram_received`` on these *instances* so SRTP packets
    are handled synchronously, before aioice's STUN parse attempt and its
    ``asyncio.Queue``; everything that is not RTP (STUN, DTLS, SRTCP) still goes
    to the original method.
  * ``Connection._nominated`` (dict component -> ``CandidatePair``) with the
    pair's ``protocol`` and ``remote_addr``: where forwarded packets go.
  * ``aioice.ice.get_host_addresses`` (module function, wrapped once by
    ``media.ice`` so a context variable can restrict gathering).
  * ``Connection.get_component_candidates`` binds each host candidate with
    ``loop.create_datagram_endpoint(factory, local_addr=(address, 0))`` on the running
    loop: ``media.ice`` wraps that method on the loop *instance* (once per loop) so binds
    made inside ``IcePolicy.gathering()`` with a port range take a port from the range.
  * ``Connection._local_candidates`` / ``StunProtocol.local_candidate`` (read only): the
    Python client checks that the selected pair's local address still exists.
  * ``Connection.query_consent`` (replaced on the class by ``media.consent``, RFC 7675's
    consent timer instead of aioice's 0.5 s per answer), with what it uses:
    ``Connection._query_consent_task`` (cleared before the expiring task closes the
    connection, as aioice does), ``Connection.build_request``, ``remote_password``,
    ``StunProtocol.transactions`` (dict transaction id -> object with
    ``response_received(message, addr)``) and ``StunProtocol.send_stun``.

asyncio
  * ``loop.create_datagram_endpoint`` overridden per loop *instance* (see above); works on
    the standard selector loop (not uvloop, whose loop class has no instance dict).
  * ``_SelectorDatagramTransport._sock``: the raw UDP socket, used for a direct
    ``sendto`` (falls back to ``transport.sendto`` when absent, e.g. uvloop, or
    when the socket would block).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aioice.ice
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.exceptions import InvalidStateError
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics

log = logging.getLogger(__name__)

# Name-mangled private attributes of aiortc 1.16.0 (checked by tests/test_aiortc_hooks.py).
SENDER_NTP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TS = "_RTCRtpSender__rtp_timestamp"
SENDER_PACKETS = "_RTCRtpSender__packet_count"
SENDER_OCTETS = "_RTCRtpSender__octet_count"
RECEIVER_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"

Datagram = Callable[[bytes, Any], None]


def dtls_transport(transceiver: RTCRtpTransceiver) -> RTCDtlsTransport:
    """The (bundled) DTLS transport of a transceiver (public API)."""
    return transceiver.receiver.transport


def ice_connection(dtls: RTCDtlsTransport) -> aioice.Connection:
    """aioice Connection under an RTCDtlsTransport (private: ``RTCIceTransport._connection``)."""
    return dtls.transport._connection


def srtp_sessions(dtls: RTCDtlsTransport):
    """(rx, tx) pylibsrtp Sessions; both None until the DTLS handshake is done."""
    return dtls._rx_srtp, dtls._tx_srtp


def negotiated_payload_type(transceiver: RTCRtpTransceiver) -> int | None:
    codecs = transceiver._codecs
    return codecs[0].payloadType if codecs else None


def sender_ssrc(sender: RTCRtpSender) -> int:
    return sender._ssrc


def stun_protocols(conn: aioice.Connection) -> list:
    return list(conn._protocols)


_AIORTC_CONNECT = RTCPeerConnection._RTCPeerConnection__connect  # as shipped


def aiortc_connect_function() -> Callable:
    """aiortc's own connect coroutine (for tests that show what it did)."""
    return _AIORTC_CONNECT


def quiet_connect_after_close() -> None:
    """A peer connection closed mid-connect: its connect task stops without an error (idempotent)."""
    if getattr(RTCPeerConnection._RTCPeerConnection__connect, "_haven_quiet", False):
        return
    original = _AIORTC_CONNECT

    async def connect(self) -> None:
        try:
            await original(self)
        except InvalidStateError:
            if not self._RTCPeerConnection__isClosed:
                raise  # not closed: a real fault, let asyncio report it

    connect._haven_quiet = True
    RTCPeerConnection._RTCPeerConnection__connect = connect


def nominated_pairs(conn: aioice.Connection) -> list:
    """The selected ``CandidatePair`` of every component (``protocol``, ``remote_addr``)."""
    return list(conn._nominated.values())


_AIOICE_QUERY_CONSENT = aioice.Connection.query_consent  # as shipped, before any replacement


def aioice_consent_function() -> Callable:
    """aioice's own ``Connection.query_consent`` (for tests that show what it did)."""
    return _AIOICE_QUERY_CONSENT


def set_consent_function(fn: Callable) -> None:
    """Run ``fn(connection)`` as every aioice connection's consent freshness task."""
    if getattr(aioice.Connection.query_consent, "_haven_consent", None) is fn:
        return

    async def query_consent(self) -> None:
        await fn(self)

    query_consent._haven_consent = fn
    aioice.Connection.query_consent = query_consent


def consent_task_done(conn: aioice.Connection) -> None:
    """The consent task is about to close its own connection: do not let close() cancel it."""
    conn._query_consent_task = None


def nominated_pair(conn: aioice.Connection, component: int = 1):
    """(protocol, remote_addr) of the selected pair, or None before ICE completes."""
    pair = conn._nominated.get(component)
    if pair is None:
        return None
    return pair.protocol, pair.remote_addr


def raw_socket(transport) -> Any:
    """The raw socket of an asyncio datagram transport, or None (uvloop, closed...)."""
    return getattr(transport, "_sock", None)


def intercept_datagrams(protocol, make_handler: Callable[[Datagram], Datagram]) -> None:
    """Replace ``datagram_received`` on one StunProtocol *instance*.

    ``make_handler(original)`` returns the new handler; it must call ``original``
    for whatever it does not consume. Undo with :func:`release_datagrams`.
    """
    original = type(protocol).datagram_received.__get__(protocol)
    protocol.datagram_received = make_handler(original)


def release_datagrams(protocol) -> None:
    protocol.__dict__.pop("datagram_received", None)


def set_sender_report_counters(
    sender: RTCRtpSender, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Feed the counters aiortc's sender RTCP task puts into its next SR."""
    setattr(sender, SENDER_NTP, ntp_timestamp)
    setattr(sender, SENDER_RTP_TS, rtp_timestamp & 0xFFFFFFFF)
    setattr(sender, SENDER_PACKETS, packets)
    setattr(sender, SENDER_OCTETS, octets)


def divert_receiver(receiver: RTCRtpReceiver, handle_plain_rtp: Callable[[bytes], None]) -> None:
    """Send RTP that reaches aiortc's receiver to ``handle_plain_rtp`` (re-serialized,
    without header extensions) instead of the jitter buffer and decoder."""

    async def _handle_rtp_packet(packet, arrival_time_ms: int) -> None:
        try:
            handle_plain_rtp(packet.serialize())
        except Exception:
            log.exception("diverted RTP packet could not be forwarded")

    receiver._handle_rtp_packet = _handle_rtp_packet


def register_receive_statistics(receiver: RTCRtpReceiver, ssrc: int, stats: StreamStatistics) -> None:
    """Make aiortc's receiver RTCP task report on ``ssrc`` using ``stats``."""
    getattr(receiver, RECEIVER_REMOTE_STREAMS)[ssrc] = stats


def unregister_receive_statistics(receiver: RTCRtpReceiver, ssrc: int) -> None:
    getattr(receiver, RECEIVER_REMOTE_STREAMS).pop(ssrc, None)


def host_addresses_function():
    return aioice.ice.get_host_addresses


def set_host_addresses_function(fn) -> None:
    aioice.ice.get_host_addresses = fn


def datagram_endpoint_function(loop):
    return loop.create_datagram_endpoint


def set_datagram_endpoint_function(loop, fn) -> None:
    loop.create_datagram_endpoint = fn


def selected_local_candidate(conn: aioice.Connection, component: int = 1):
    """The local aioice Candidate of the nominated pair, or None."""
    pair = conn._nominated.get(component)
    return None if pair is None else pair.protocol.local_candidate


__all__ = [
    "RTCPeerConnection",
    "dtls_transport",
    "ice_connection",
    "srtp_sessions",
    "negotiated_payload_type",
    "sender_ssrc",
    "stun_protocols",
    "nominated_pairs",
    "quiet_connect_after_close",
    "aiortc_connect_function",
    "aioice_consent_function",
    "set_consent_function",
    "consent_task_done",
    "nominated_pair",
    "raw_socket",
    "intercept_datagrams",
    "release_datagrams",
    "set_sender_report_counters",
    "register_receive_statistics",
    "unregister_receive_statistics",
    "host_addresses_function",
    "set_host_addresses_function",
    "datagram_endpoint_function",
    "set_datagram_endpoint_function",
    "selected_local_candidate",
]


class SourceStatistics(StreamStatistics):
    """Receive statistics of a forwarded source, duck-typed as aiortc's
    ``StreamStatistics`` (read by ``RTCRtpReceiver._run_rtcp`` for its receiver
    reports). Reads the counters ``media.rtp_forward.Source`` keeps per packet."""

    def __init__(self, source) -> None:  # no super().__init__: the fields are properties here
        self._source = source
        self._clockrate = 48000
        self._expected_prior = 0
        self._received_prior = 0

    def add(self, packet) -> None:  # counting happens in Source.handle
        return None

    @property
    def packets_received(self) -> int:
        return self._source.received

    @property
    def max_seq(self) -> int:
        seq = self._source.seq
        return 0 if seq is None else seq

    @property
    def base_seq(self) -> int:
        return self._source.base_seq

    @property
    def cycles(self) -> int:
        return self._source.cycles

    @property
    def jitter(self) -> int:
        return self._source.jitter_q4 >> 4

    @property
    def packets_expected(self) -> int:
        s = self._source
        if s.seq is None:
            return 0
        return s.cycles + s.seq - s.base_seq + 1
