"""Haven SFU: real aiortc peers over 127.0.0.1, in-process, no mocks.

No timing asserts: waits are "until a condition holds, with a generous deadline";
"nothing arrives any more" is checked by draining in-flight packets first, then
comparing counters over a quiet interval.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct

import pytest

from media.client import HavenClient, encode_opus
from media.ice import IcePolicy, candidate_addresses
from media.rtp_forward import Downstream, Egress, Source
from media.sfu import (
    NegotiationError,
    ParticipantExists,
    RoomFull,
    RoomRegistry,
)

ICE = IcePolicy.loopback()
DEADLINE_S = 8.0
QUIET_S = 0.3  # interval over which "no packet" is checked (50 pkt/s publishers)


@pytest.fixture(scope="module")
def opus_streams() -> list[list[bytes]]:
    return [encode_opus(50, freq=300.0 + 150 * i, seed=i) for i in range(4)]


async def until(cond, what: str, timeout: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def drain() -> None:
    """Let packets already in flight (kernel buffers, same loop) be processed."""
    await asyncio.sleep(0.1)


class Peer:
    def __init__(self, registry: RoomRegistry, room_id: str, pid: str, payloads, slots=3, **kw):
        self.registry, self.room_id, self.pid = registry, room_id, pid
        self.payloads = payloads
        self.client = HavenClient(ICE, payloads=payloads, slots=slots, **kw)
        self.maps: list[dict] = []
        self.participant = None

    async def join(self, sender_id=None):
        room = self.registry.room(self.room_id)
        self.participant = await room.join(self.pid, sender_id=sender_id,
                                           on_slots=lambda p, m: self.maps.append(m))
        offer = await self.client.offer()
        assert set(candidate_addresses(offer)) == {"127.0.0.1"}
        answer = await self.participant.answer(offer)
        assert set(candidate_addresses(answer)) == {"127.0.0.1"}
        await self.client.accept(answer)
        return self

    def slot_of(self, other_pid: str) -> dict | None:
        for s in self.maps[-1]["slots"]:
            if s["participant_id"] == other_pid:
                return s
        return None

    def count(self, mid: str) -> int:
        return self.client.slots[mid].count

    def counts(self) -> dict[str, int]:
        return {mid: s.count for mid, s in self.client.slots.items()}


def assert_contiguous_copy(received: list[bytes], sent: list[bytes]) -> None:
    """Every received payload is byte-identical to the sent one at the same position
    of the (looping) publisher stream."""
    assert received, "nothing received"
    start = sent.index(received[0])
    for k, payload in enumerate(received):
        assert payload == sent[(start + k) % len(sent)], f"payload {k} differs"


def assert_one_continuous_stream(headers) -> None:
    ssrcs = {h[2] for h in headers}
    assert len(ssrcs) == 1
    for (s0, t0, _), (s1, t1, _) in zip(headers, list(headers)[1:], strict=False):
        assert (s1 - s0) & 0xFFFF == 1
        assert 0 < (t1 - t0) & 0xFFFFFFFF < 48000 * 5


@pytest.fixture
async def registry():
    reg = RoomRegistry(ice=ICE, connect_timeout=20)
    yield reg
    await reg.close()


async def test_three_peers_forward_remove_and_mute(registry, opus_streams):
    peers = [Peer(registry, "room-a", f"p{i}", opus_streams[i]) for i in range(3)]
    for p in peers:
        await p.join()
    await asyncio.gather(*(p.client.wait_connected() for p in peers))

    # slot map: each sees the two others, in join order, and never itself
    for p in peers:
        others = [q.pid for q in peers if q is not p]
        m = p.maps[-1]
        assert m["participant_id"] == p.pid and m["upstream_mid"] == "0"
        assert [s["slot"] for s in m["slots"]] == [1, 2, 3]
        assert [s["participant_id"] for s in m["slots"]] == others + [None]
        assert p.slot_of(p.pid) is None
        assert p.participant.slots[0].participant_id == others[0]

    await until(lambda: all(p.count(s["mid"]) >= 15 for p in peers for s in p.maps[-1]["slots"]
                            if s["participant_id"]), "15 packets on every occupied slot")
    for p in peers:
        free = p.maps[-1]["slots"][2]
        assert p.count(free["mid"]) == 0  # the free slot carries nothing
        for s in p.maps[-1]["slots"][:2]:
            src = next(q for q in peers if q.pid == s["participant_id"])
            slot = p.client.slots[s["mid"]]
            assert_contiguous_copy(list(slot.payloads), src.payloads)
            assert_one_continuous_stream(slot.headers)

    # -- server-enforced mute of p0
    room = registry.get("room-a")
    p0, p1, p2 = peers
    room.set_forwarding("p0", False)
    assert not p0.participant.forwarding_enabled
    await drain()
    muted = {p.pid: p.count(p.slot_of("p0")["mid"]) for p in (p1, p2)}
    live = p1.count(p1.slot_of("p2")["mid"])
    await asyncio.sleep(QUIET_S)
    assert {p.pid: p.count(p.slot_of("p0")["mid"]) for p in (p1, p2)} == muted
    assert p1.count(p1.slot_of("p2")["mid"]) > live  # others keep flowing
    room.set_forwarding("p0", True)
    mid = p1.slot_of("p0")["mid"]
    await until(lambda: p1.count(mid) > muted["p1"] + 5, "p0 again after unmute")
    assert_one_continuous_stream(p1.client.slots[mid].headers)  # seq continues after mute

    # -- removal of p2: stops at once both ways, slot freed and announced
    p2_mid_at_p0 = p0.slot_of("p2")["mid"]
    assert await room.remove("p2")
    assert room.participant("p2") is None
    assert p0.maps[-1]["slots"][1]["participant_id"] is None
    assert p1.maps[-1]["slots"][1]["participant_id"] is None
    await drain()
    before = (p0.count(p2_mid_at_p0), p2.counts())
    live = p0.count(p0.slot_of("p1")["mid"])
    await asyncio.sleep(QUIET_S)
    assert (p0.count(p2_mid_at_p0), p2.counts()) == before
    assert p0.count(p0.slot_of("p1")["mid"]) > live
    assert not await room.remove("p2")
    for p in peers:
        await p.client.close()


async def test_slot_reuse_continues_the_stream(registry, opus_streams):
    a = await Peer(registry, "room-b", "a", opus_streams[0], slots=2).join()
    b = await Peer(registry, "room-b", "b", opus_streams[1], slots=2).join()
    await asyncio.gather(a.client.wait_connected(), b.client.wait_connected())
    mid = a.slot_of("b")["mid"]
    await until(lambda: a.count(mid) >= 5, "b at a")
    await registry.get("room-b").remove("b")
    await b.client.close()
    await drain()
    n_before = a.count(mid)
    c = await Peer(registry, "room-b", "c", opus_streams[2], slots=2).join()
    await c.client.wait_connected()
    assert a.slot_of("c")["mid"] == mid  # the freed slot is reused
    await until(lambda: a.count(mid) >= n_before + 5, "c at a")
    headers = list(a.client.slots[mid].headers)
    assert_one_continuous_stream(headers)  # same SSRC, seq last+1, ts forward
    got = list(a.client.slots[mid].payloads)[n_before:]
    assert_contiguous_copy(got, opus_streams[2])
    await a.client.close()
    await c.client.close()


async def test_opaque_payloads_are_forwarded_byte_identical(registry):
    rnd = random.Random(7)
    junk = [os.urandom(rnd.randint(1, 300)) for _ in range(50)]  # looks like SFrame ciphertext
    junk[0] = b"\x00" * 40
    junk[1] = b"\xff" * 3
    a = await Peer(registry, "room-c", "a", junk, slots=1).join()
    b = await Peer(registry, "room-c", "b", encode_opus(10), slots=1).join()
    await asyncio.gather(a.client.wait_connected(), b.client.wait_connected())
    mid = b.slot_of("a")["mid"]
    await until(lambda: b.count(mid) >= 60, "a full loop of junk at b")
    assert_contiguous_copy(list(b.client.slots[mid].payloads), junk)
    await a.client.close()
    await b.client.close()


async def test_shared_sender_id_and_listen_only(registry, opus_streams):
    # one person publishing and listening on two connections (like the benchmark)
    pub = await Peer(registry, "room-d", "x-pub", opus_streams[0], slots=0).join(sender_id="x")
    lis = await Peer(registry, "room-d", "x-listen", None, slots=2).join(sender_id="x")
    y = await Peer(registry, "room-d", "y", opus_streams[1], slots=2).join()
    await asyncio.gather(pub.client.wait_connected(), lis.client.wait_connected(),
                         y.client.wait_connected())
    assert not lis.participant.publishing and pub.participant.publishing
    assert lis.slot_of("x-pub") is None and lis.slot_of("y") is not None
    assert y.slot_of("x-pub") is not None and y.slot_of("x-listen") is None
    mid = lis.slot_of("y")["mid"]
    await until(lambda: lis.count(mid) >= 5 and y.count(y.slot_of("x-pub")["mid"]) >= 5,
                "y at x-listen and x-pub at y")
    assert sum(lis.counts().values()) == lis.count(mid)
    for p in (pub, lis, y):
        await p.client.close()


async def test_negotiation_rules(registry, opus_streams):
    room = registry.room("room-e")
    p = await room.join("a")
    with pytest.raises(ParticipantExists):
        await room.join("a")
    client = HavenClient(ICE, payloads=opus_streams[0], slots=1)
    client.pc.addTransceiver("video", direction="recvonly")
    with pytest.raises(NegotiationError):
        await p.answer(await client.offer())
    await client.close()

    q = await room.join("b")
    client = HavenClient(ICE, payloads=opus_streams[0], slots=1)
    await client.accept(await q.answer(await client.offer()))
    with pytest.raises(NegotiationError):
        await q.answer(await client.offer())  # no renegotiation
    await client.close()

    small = RoomRegistry(ice=ICE, max_participants_per_room=1)
    await small.room("r").join("one")
    with pytest.raises(RoomFull):
        await small.room("r").join("two")
    await small.close()


async def test_peer_connection_closed_by_client_is_cleaned_up(registry, opus_streams):
    a = await Peer(registry, "room-f", "a", opus_streams[0], slots=1).join()
    b = await Peer(registry, "room-f", "b", opus_streams[1], slots=1).join()
    await asyncio.gather(a.client.wait_connected(), b.client.wait_connected())
    await b.client.close()  # DTLS close_notify -> server PC closes -> participant removed
    await until(lambda: registry.get("room-f").participant("b") is None, "b removed")
    assert a.maps[-1]["slots"][0]["participant_id"] is None
    await a.client.close()
    await until(lambda: registry.get("room-f") is None, "empty room dropped")


# --------------------------------------------------------------- forwarding core, no network


class _Sink:
    def __init__(self):
        self.packets: list[bytes] = []

    def protect(self, data: bytes) -> bytes:
        return data

    def sendto(self, data: bytes, addr) -> None:
        self.packets.append(data)


def _egress(name="sub") -> tuple[Egress, _Sink]:
    sink = _Sink()
    eg = Egress(name)
    eg.activate(sink, transport=None, sock=sink, addr=("127.0.0.1", 9))
    return eg, sink


def _rtp(seq, ts, ssrc, payload, pt=111, marker=0, csrc=0, ext: bytes | None = None) -> bytes:
    b0 = 0x80 | csrc | (0x10 if ext is not None else 0)
    hdr = struct.pack("!BBHII", b0, (marker << 7) | pt, seq, ts, ssrc) + b"\x00\x00\x00\x01" * csrc
    if ext is not None:
        hdr += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    return hdr + payload


def test_rewrite_strips_extensions_and_keeps_payload():
    eg, sink = _egress()
    ds = Downstream(eg, 1, "1", ssrc=0xABCDEF01, pt=96)
    src = Source("pub", pt=111)
    src.attach(ds)
    src.handle(_rtp(65534, 1000, 42, b"payload-1", marker=1, csrc=2, ext=b"\x10\xaa\x00\x00"))
    src.handle(_rtp(65535, 1960, 42, b"payload-2"))
    src.handle(_rtp(0, 2920, 42, b"payload-3"))
    src.handle(_rtp(1, 3880, 42, b"x", pt=0))  # not Opus: dropped
    src.handle(b"\x80")  # garbage: ignored
    assert [p[12:] for p in sink.packets] == [b"payload-1", b"payload-2", b"payload-3"]
    heads = [struct.unpack("!BBHII", p[:12]) for p in sink.packets]
    assert all(h[0] == 0x80 and h[4] == 0xABCDEF01 for h in heads)
    assert [h[1] for h in heads] == [0x80 | 96, 96, 96]
    assert [(h[2] - heads[0][2]) & 0xFFFF for h in heads] == [0, 1, 2]
    assert [(h[3] - heads[0][3]) & 0xFFFFFFFF for h in heads] == [0, 960, 1920]
    assert src.cycles == 0x10000 and src.dropped == 1


def test_source_switch_and_mute_keep_output_continuous():
    eg, sink = _egress()
    ds = Downstream(eg, 1, "1", ssrc=7, pt=111)
    a, b = Source("a", 111), Source("b", 111)
    a.attach(ds)
    for i in range(3):
        a.handle(_rtp(100 + i, 5000 + 960 * i, 1, b"a"))
    b.handle(_rtp(9000, 777, 2, b"b"))  # b not attached yet: nothing sent
    b.attach(ds)  # moves the slot from a to b
    a.handle(_rtp(103, 7880, 1, b"a"))  # a no longer reaches this slot
    b.handle(_rtp(9001, 1737, 2, b"b"))
    b.set_enabled(False)
    b.handle(_rtp(9002, 2697, 2, b"b"))
    b.set_enabled(True)
    b.handle(_rtp(9003, 3657, 2, b"b"))
    heads = [struct.unpack("!BBHII", p[:12]) for p in sink.packets]
    assert [p[12:] for p in sink.packets] == [b"a", b"a", b"a", b"b", b"b"]
    seqs = [h[2] for h in heads]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2, 3, 4]
    tss = [h[3] for h in heads]
    assert all(0 < (t1 - t0) & 0xFFFFFFFF < 48000 * 5 for t0, t1 in zip(tss, tss[1:], strict=False))


def test_one_failing_destination_does_not_stop_the_others():
    good, sink = _egress("good")
    bad = Egress("bad")

    class Boom:
        def protect(self, data):
            raise RuntimeError("broken session")

    bad.activate(Boom(), transport=None, sock=_Sink(), addr=None)
    src = Source("pub", 111)
    src.attach(Downstream(bad, 1, "1", 1, 111))
    src.attach(Downstream(good, 1, "1", 2, 111))
    for i in range(3):
        src.handle(_rtp(i, 960 * i, 5, b"p"))
    assert len(sink.packets) == 3 and bad.errors == 3
