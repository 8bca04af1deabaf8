"""The Python client's receive buffer: order, FEC recovery, concealment, continuity. Real
libopus frames (PyAV's encoder, with and without in-band FEC)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.jitter import VoiceBuffer
from media.opus import FRAME, OpusDecoder, OpusEncoder, packet_has_fec

from .voice_support import band_share, syllables


def encode(pcm: np.ndarray, fec: bool) -> list[bytes]:
    enc = OpusEncoder(fec=fec)
    out = []
    for i in range(len(pcm) // FRAME):
        out += enc.encode(pcm[i * FRAME:(i + 1) * FRAME])
    return out


@pytest.fixture(scope="module")
def voice():
    pcm = syllables(700.0, 3.0)
    return pcm, encode(pcm, fec=True), encode(pcm, fec=False)


def reference(packets: list[bytes]) -> np.ndarray:
    dec = OpusDecoder()
    return np.concatenate([dec.decode(p) for p in packets])


def play(packets, order, **kw):
    buf = VoiceBuffer(**kw)
    out = []
    for i in order:
        out += buf.push(i & 0xFFFF, packets[i % len(packets)])
    out += buf.flush()
    return buf, np.concatenate(out) if out else np.zeros(0, np.int16)


def test_fec_is_sent_for_speech_like_audio_only_when_asked(voice):
    _, with_fec, without = voice
    assert sum(bool(packet_has_fec(p)) for p in with_fec) > len(with_fec) // 2
    assert not any(packet_has_fec(p) for p in without)


def test_in_order_packets_play_at_once_and_unchanged(voice):
    _, packets, _ = voice
    buf = VoiceBuffer()
    first = buf.push(0, packets[0])
    assert len(first) == 1 and len(first[0]) == FRAME  # no added delay
    _, out = play(packets, range(len(packets)))
    assert np.array_equal(out, reference(packets))


def test_single_losses_are_rebuilt_from_fec_better_than_concealment(voice):
    pcm, with_fec, without = voice
    lost = set(range(20, len(with_fec), 9))
    order = [i for i in range(len(with_fec)) if i not in lost]
    errors = {}
    for name, packets, fec in (("fec", with_fec, True), ("plc", without, False)):
        buf, out = play(packets, order, fec=fec)
        assert len(out) == len(packets) * FRAME  # continuous: every lost frame is filled
        assert buf.stats.frames == len(packets)
        if fec:
            assert buf.stats.recovered >= len(lost) * 0.6 and buf.stats.concealed < len(lost) * 0.4
        else:
            assert buf.stats.recovered == 0 and buf.stats.concealed == len(lost)
        ref = reference(packets)
        errors[name] = np.mean([np.sqrt(np.mean((out[i * FRAME:(i + 1) * FRAME].astype(float)
                                                 - ref[i * FRAME:(i + 1) * FRAME]) ** 2))
                                for i in lost])
        assert band_share(out, 700.0) > 0.5
    assert errors["fec"] < errors["plc"] * 0.8, errors


def test_reordered_packets_are_put_back_in_order(voice):
    _, packets, _ = voice
    order = list(range(60))
    order[10], order[11] = order[11], order[10]  # within the buffer's depth
    buf, out = play(packets, order)
    assert buf.stats.decoded == 60 and buf.stats.late == 0
    assert np.array_equal(out, reference(packets[:60]))


def test_a_packet_after_its_slot_was_filled_is_dropped(voice):
    _, packets, _ = voice
    order = [0, 1, 3, 4, 5, 2, 6]  # 2 comes after 3 newer ones: already concealed
    buf, out = play(packets, order)
    assert buf.stats.late == 1 and buf.stats.frames == 7 and len(out) == 7 * FRAME


def test_sequence_numbers_wrap(voice):
    _, packets, _ = voice
    start = 0xFFFF - 20
    buf = VoiceBuffer()
    n = 0
    for k in range(50):
        n += len(buf.push((start + k) & 0xFFFF, packets[k]))
    assert n == 50 and buf.stats.decoded == 50 and buf.stats.resets == 0


def test_a_long_jump_resets_instead_of_concealing_seconds(voice):
    _, packets, _ = voice
    buf = VoiceBuffer()
    for k in range(10):
        buf.push(k, packets[k])
    assert buf.push(5000, packets[10]) and buf.stats.resets == 1 and buf.stats.concealed == 0


def test_long_outage_fades_to_silence(voice):
    _, packets, _ = voice
    buf, out = play(packets, [*range(10), *range(30, 40)], fec=False)
    gap = out[10 * FRAME:30 * FRAME]
    assert buf.stats.concealed == 20
    assert not np.any(gap[5 * FRAME:])  # beyond max_plc frames: silence, not guesses


@settings(max_examples=30, deadline=None)
@given(drops=st.sets(st.integers(1, 98), max_size=30),
       swaps=st.lists(st.integers(1, 97), max_size=10))
def test_any_loss_and_reordering_gives_one_frame_per_sequence_number(voice, drops, swaps):
    _, packets, _ = voice
    order = list(range(100))
    for s in swaps:
        order[s], order[s + 1] = order[s + 1], order[s]
    order = [i for i in order if i not in drops]
    buf, out = play(packets, order)
    assert len(out) == buf.stats.frames * FRAME
    assert buf.stats.frames == 100  # every sequence number played exactly once
    assert buf.stats.decoded + buf.stats.late == len(order)
