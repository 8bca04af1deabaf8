"""Every private aiortc / aioice / asyncio detail Haven's SFU and client rely on.

If an upgrade moves one of these, this file fails with a clear message instead of
forwarding silently breaking. The list mirrors media/aiortc_hooks.py's docstring.
"""

from __future__ import annotations

import asyncio
import inspect

import aioice
import aioice.ice
import aiortc
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpreceiver import StreamStatistics

from media import aiortc_hooks as hooks
from media.client import HavenClient, encode_opus
from media.ice import IcePolicy
from media.sfu import RoomRegistry


def test_pinned_versions():
    assert aiortc.__version__ == "1.16.0"
    assert aioice.__version__ == "0.13.0"


def test_dtls_transport_srtp_sessions_and_ice_connection():
    src = inspect.getsource(RTCDtlsTransport)
    assert "self._rx_srtp" in src and "self._tx_srtp" in src
    assert "self._rx_srtp.unprotect(data)" in src  # RTP arrives SRTP-protected
    assert inspect.isfunction(pylibsrtp.Session.protect)
    assert inspect.isfunction(pylibsrtp.Session.unprotect)
    assert "self._connection = " in inspect.getsource(RTCIceTransport.__init__)
    assert isinstance(RTCDtlsTransport.transport, property)


def test_aioice_connection_protocols_nominated_and_datagram_received():
    init = inspect.getsource(aioice.Connection.__init__)
    assert "self._protocols" in init and "self._nominated" in init
    assert list(inspect.signature(aioice.ice.StunProtocol.datagram_received).parameters) == [
        "self", "data", "addr"]
    # non-STUN datagrams are handed to the connection: our override sees them first
    assert "self.receiver.data_received(" in inspect.getsource(
        aioice.ice.StunProtocol.datagram_received)
    pair_attrs = inspect.getsource(aioice.ice.CandidatePair)
    assert "self.protocol" in pair_attrs and "def remote_addr" in pair_attrs


def test_aioice_get_host_addresses_is_module_level():
    from media import ice as ice_module

    ice_module.install()
    fn = aioice.ice.get_host_addresses
    assert fn is ice_module._policy_host_addresses
    assert list(inspect.signature(ice_module._installed_original).parameters) == [
        "use_ipv4", "use_ipv6"]
    assert "get_host_addresses(" in inspect.getsource(aioice.Connection.gather_candidates)


def test_asyncio_datagram_transport_has_raw_socket():
    from asyncio import selector_events

    assert "self._sock" in inspect.getsource(selector_events._SelectorTransport.__init__)


def test_transceiver_codecs_and_sender_ssrc():
    assert "self._codecs" in inspect.getsource(RTCRtpTransceiver.__init__)
    assert "self._ssrc = " in inspect.getsource(RTCRtpSender.__init__)


def test_sender_report_counters_exist():
    init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name} = " in init, name
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("self.__ntp_timestamp", "self.__rtp_timestamp", "self.__packet_count",
                 "self.__octet_count"):
        assert name in rtcp, name
    assert hooks.SENDER_PACKETS == "_RTCRtpSender__packet_count"


def test_receiver_remote_streams_and_stream_statistics():
    assert "self.__remote_streams" in inspect.getsource(RTCRtpReceiver.__init__)
    rtcp = inspect.getsource(RTCRtpReceiver._run_rtcp)
    for attr in ("stream.fraction_lost", "stream.packets_lost", "stream.max_seq", "stream.jitter"):
        assert attr in rtcp, attr
    assert isinstance(StreamStatistics.fraction_lost, property)
    assert "_expected_prior" in inspect.getsource(StreamStatistics)

    class Src:
        received, seq, base_seq, cycles, jitter_q4 = 9, 10, 1, 0, 32

    stats = hooks.SourceStatistics(Src())
    assert (stats.packets_expected, stats.packets_lost, stats.jitter) == (10, 1, 2)
    assert stats.fraction_lost == 25  # 1 of 10 lost, 8-bit fixed point


def test_receiver_handle_rtp_packet_signature():
    # media.client overrides it per instance to count packets before any jitter buffer
    assert list(inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters) == [
        "self", "packet", "arrival_time_ms"]
    assert "await receiver._handle_rtp_packet(packet, arrival_time_ms=" in inspect.getsource(
        RTCDtlsTransport._handle_rtp_data)


def test_rtp_packet_serialize_defaults():
    from aiortc.rtp import RtpPacket

    params = inspect.signature(RtpPacket.serialize).parameters
    assert all(p.default is not inspect.Parameter.empty for n, p in params.items() if n != "self")
    data = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x").serialize()
    assert data[12:] == b"x"


def test_held_track_contract():
    # a sender without a track polls every 20 ms; the SFU gives each slot a track that waits
    src = inspect.getsource(RTCRtpSender._run_rtp)
    assert "await asyncio.sleep(0.02)" in src and "_next_encoded_frame" in src


async def test_hooks_on_live_connection():
    """The hooks resolve to live objects on a real, connected loopback session."""
    ice = IcePolicy.loopback()
    registry = RoomRegistry(ice=ice)
    client = HavenClient(ice, payloads=encode_opus(5), slots=1)
    try:
        participant = await registry.room("r").join("a")
        await client.accept(await participant.answer(await client.offer()))
        await client.wait_connected()
        for _ in range(100):
            if participant.state == "connected":
                break
            await asyncio.sleep(0.02)
        pc = participant._pc
        assert isinstance(pc, RTCPeerConnection)
        up = participant._upstream
        dtls = hooks.dtls_transport(up)
        rx, tx = hooks.srtp_sessions(dtls)
        assert isinstance(rx, pylibsrtp.Session) and isinstance(tx, pylibsrtp.Session)
        conn = hooks.ice_connection(dtls)
        assert isinstance(conn, aioice.Connection)
        protocol, addr = hooks.nominated_pair(conn)
        assert addr[0] == "127.0.0.1"
        assert hooks.raw_socket(protocol.transport) is not None
        protos = hooks.stun_protocols(conn)
        assert protos and all("datagram_received" in p.__dict__ for p in protos)  # hooked
        assert hooks.negotiated_payload_type(up) == 96
        ssrc = hooks.sender_ssrc(pc.getTransceivers()[1].sender)
        assert isinstance(ssrc, int) and f"a=ssrc:{ssrc} " in pc.localDescription.sdp
        sender = pc.getTransceivers()[1].sender
        hooks.set_sender_report_counters(sender, 1 << 40, 1234, 5, 500)
        assert getattr(sender, hooks.SENDER_PACKETS) == 5
        assert isinstance(getattr(up.receiver, hooks.RECEIVER_REMOTE_STREAMS), dict)
        assert "_handle_rtp_packet" in up.receiver.__dict__  # diverted to the forwarder
    finally:
        await client.close()
        await registry.close()


@pytest.mark.parametrize("name", ["_rx_srtp", "_tx_srtp", "_state"])
def test_dtls_instance_attributes(name):
    assert f"self.{name}" in inspect.getsource(RTCDtlsTransport.__init__)


def test_ice_connection_request_received_signature():
    """media.ice.IcePolicy.guard wraps this per connection (loopback-only ICE)."""
    params = list(inspect.signature(aioice.Connection.request_received).parameters)
    assert params == ["self", "message", "addr", "protocol"]
    # peer-reflexive learning happens behind it, which is what the guard must pre-empt
    assert "prflx" in inspect.getsource(aioice.Connection.check_incoming)


async def test_loopback_guard_ignores_checks_from_other_addresses():
    policy = IcePolicy.loopback()
    a, b = policy.new_peer_connection(), policy.new_peer_connection()
    try:
        a.addTransceiver("audio", direction="sendrecv")
        with policy.gathering():
            await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        with policy.gathering():
            await b.setLocalDescription(await b.createAnswer())
        t = b.getTransceivers()[0]
        policy.guard(t)
        conn = hooks.ice_connection(hooks.dtls_transport(t))
        inner = conn.request_received.__closure__  # the guard wraps the original
        assert inner is not None and conn.request_received._haven_loopback_guard
        before = list(conn._remote_candidates)
        conn.request_received(object(), ("192.0.2.7", 4000), None)  # would crash if not dropped
        assert conn._remote_candidates == before
        policy.guard(t)  # idempotent
        assert conn.request_received.__closure__ == inner
    finally:
        await a.close()
        await b.close()


def test_aioice_binds_host_candidates_through_the_running_loop():
    """media.ice wraps loop.create_datagram_endpoint per loop for --udp-port-range."""
    src = inspect.getsource(aioice.Connection.get_component_candidates)
    assert "loop = asyncio.get_running_loop()" in src
    assert "loop.create_datagram_endpoint(" in src and "local_addr=(address, 0)" in src


async def test_port_range_hook_wraps_the_loop_instance_once():
    from media import ice as ice_module

    loop = asyncio.get_running_loop()
    policy = IcePolicy(host_addresses=("127.0.0.1",), port_range=(47000, 47009))
    with policy.gathering():
        first = hooks.datagram_endpoint_function(loop)
    with policy.gathering():
        assert hooks.datagram_endpoint_function(loop) is first  # idempotent
    assert first._haven_port_range and "create_datagram_endpoint" in loop.__dict__
    assert ice_module._active.get() is None  # outside the context nothing is restricted


def test_selected_local_candidate_reads_the_nominated_pair():
    assert "self._nominated" in inspect.getsource(aioice.Connection.__init__)
    assert "protocol.local_candidate = Candidate(" in inspect.getsource(
        aioice.Connection.get_component_candidates)

    class Pair:
        protocol = type("P", (), {"local_candidate": "cand"})()

    conn = type("C", (), {"_nominated": {1: Pair()}})()
    assert hooks.selected_local_candidate(conn) == "cand"
    assert hooks.selected_local_candidate(type("C", (), {"_nominated": {}})()) is None


def test_consent_task_contract():
    """media.consent replaces aioice's consent task; what it relies on must still be there."""
    original = hooks.aioice_consent_function()
    assert inspect.iscoroutinefunction(original)
    src = inspect.getsource(aioice.ice.Connection.connect)
    assert "self._query_consent_task = asyncio.create_task(self.query_consent())" in src
    close_src = inspect.getsource(aioice.ice.Connection.close)
    assert "self._query_consent_task" in close_src and ".cancel()" in close_src
    assert "self._query_consent_task = None" in inspect.getsource(original)
    assert list(inspect.signature(aioice.ice.Connection.build_request).parameters) == [
        "self", "pair", "nominate"]
    dgram = inspect.getsource(aioice.ice.StunProtocol.datagram_received)
    assert "self.transactions[message.transaction_id]" in dgram
    assert "transaction.response_received(message, addr)" in dgram
    assert inspect.isfunction(aioice.ice.StunProtocol.send_stun)
    # installed: every connection's consent task is Haven's
    from media import consent
    consent.install()
    assert aioice.Connection.query_consent._haven_consent is consent.query_consent


async def _closed_while_connecting(connect) -> BaseException | None:
    """Run ``connect`` (aiortc's connect coroutine, or ours) on a negotiated peer connection
    that is closed just as its ICE transport starts: what does it raise?"""
    ice = IcePolicy.loopback()
    a, b = ice.new_peer_connection(), ice.new_peer_connection()
    a.addTransceiver("audio", direction="sendrecv")
    with ice.gathering():
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
    original_start = RTCIceTransport.start

    async def start(self, remote):
        await b.close()  # the participant leaves while its connection is still starting
        return await original_start(self, remote)

    RTCIceTransport.start = start
    try:
        await connect(b)
    except BaseException as exc:  # noqa: BLE001 - what it raised is the answer
        return exc
    finally:
        RTCIceTransport.start = original_start
        await a.close()
        await b.close()
    return None


async def test_a_peer_connection_closed_while_connecting_ends_quietly(monkeypatch):
    hooks.quiet_connect_after_close()
    quiet = RTCPeerConnection._RTCPeerConnection__connect
    assert quiet._haven_quiet is True
    assert "asyncio.ensure_future(self.__connect())" in inspect.getsource(RTCPeerConnection)
    # the fault as aiortc has it: the task raises, nobody reads it, asyncio logs an error
    original = hooks.aiortc_connect_function()
    assert original is not quiet
    monkeypatch.setattr(RTCPeerConnection, "_RTCPeerConnection__connect", original)
    assert isinstance(await _closed_while_connecting(original), aiortc.InvalidStateError)
    monkeypatch.setattr(RTCPeerConnection, "_RTCPeerConnection__connect", quiet)
    assert await _closed_while_connecting(quiet) is None
