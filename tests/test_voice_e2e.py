"""End-to-end encrypted voice through the real server and SFU, with real aiortc clients over
loopback: what each hears, what the server saw, and how keys move."""

from __future__ import annotations

import asyncio
import os

import av
import numpy as np
import pytest

from media import signaling as sig
from media.e2ee import IdentityKeys, WrappedKey
from media.sframe import SenderKey, SFrameError
from media.voice_client import VoiceClient

from .voice_support import VoiceServer, band_share, key_forms, rms, tone

pytestmark = pytest.mark.slow

FREQS = [400.0, 900.0, 1700.0]


async def wait_for(predicate, timeout=15.0, step=0.05):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(step)


class Tap:
    """Records, per client, every payload the SFU forwarded to it (before decryption) and
    every signaling message it sent or received."""

    def __init__(self):
        self.payloads: list[tuple[str, float, bytes]] = []
        self.messages: list[str] = []

    def attach(self, client: VoiceClient, name: str) -> VoiceClient:
        original = client.on_payload
        loop = asyncio.get_running_loop()

        def on_payload(mid, payload, *seq):
            self.payloads.append((name, loop.time(), payload))
            original(mid, payload, *seq)

        client.on_payload = on_payload
        client.on_message = lambda direction, text: self.messages.append(text)
        return client


class PlaintextLog:
    """Every plaintext Opus frame a client encoded, captured before encryption."""

    def __init__(self, client: VoiceClient):
        self.frames: set[bytes] = set()
        self.in_order: list[bytes] = []
        inner = client._encrypt

        def encrypt(frame: bytes) -> bytes:
            if frame:
                self.frames.add(frame)
                self.in_order.append(frame)
            return inner(frame)

        client._encrypt = encrypt


def decode_as_opus(payloads: list[bytes]) -> np.ndarray:
    """What a decoder would make of these bytes if they were plain Opus."""
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = 48000
    ctx.layout = "mono"
    out = []
    for p in payloads:
        try:
            for f in ctx.decode(av.Packet(p)):
                out.append(f.to_ndarray().astype(np.float32).mean(axis=0).reshape(-1) * 32767)
        except av.FFmpegError:
            continue
    return np.concatenate(out) if out else np.zeros(0)


async def test_three_clients_hear_each_other_and_the_server_sees_only_ciphertext(tmp_path):
    tap = Tap()
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(3)
        clients = [tap.attach(VoiceClient(u, IdentityKeys.generate(), send_pcm=tone(f)), f"c{i}")
                   for i, (u, f) in enumerate(zip(urls, FREQS, strict=True))]
        plain = [PlaintextLog(c) for c in clients]
        for c in clients:
            await c.start()
        await wait_for(lambda: all(c.summary.frames_received > 300 for c in clients), 30)
        base_keys = set()
        for c in clients:
            base_keys.add(c.manager.sender.key.base_key)
            for m in c.members.values():
                k = c.manager.receiver.latest_key(m.sender_id)
                assert k is not None
                base_keys.add(k.base_key)
        codes = {c.security_code for c in clients}
        # counted before anyone leaves: a departure re-keys, and frames under the new key
        # may overtake its wrapped key by design (media/e2ee.py SenderKeyManager)
        failed = [c.summary.frames_failed for c in clients]
        for c in clients:
            await c.close()

    # 1. each recording holds the other two tones, not its own, and is not silence
    for i, c in enumerate(clients):
        pcm = c.mixer.pcm16()
        assert rms(pcm) > 500
        for j, f in enumerate(FREQS):
            share = band_share(pcm, f)
            if i == j:
                assert share < 0.02, (i, f, share)
            else:
                assert share > 0.15, (i, f, share)
        assert failed[i] == 0

    # 2. everyone shows the same security code
    assert len(codes) == 1 and len(next(iter(codes)).replace(" ", "")) == 15

    # 3. the SFU forwarded only ciphertext: no payload is (or contains) a plaintext frame,
    #    every payload is a valid SFrame, and decoding them as Opus gives none of the tones
    all_plain = set().union(*(p.frames for p in plain))
    assert len(all_plain) > 100
    forwarded = [p for _, _, p in tap.payloads]
    assert len(forwarded) > 900
    assert not any(p in all_plain for p in forwarded)
    assert not any(fr in p for p in forwarded[::25] for fr in list(all_plain)[:200])
    as_opus = decode_as_opus(forwarded[:600])
    control = decode_as_opus([f for c in plain for f in c.in_order[50:150]])
    for f in FREQS:
        assert band_share(control, f) > 0.15  # the same check does find tones in plaintext
        assert band_share(as_opus, f) < 0.08

    # 4. no base key ever crossed the signaling channel in the clear
    assert len(base_keys) >= 3 and tap.messages
    text = "\n".join(tap.messages)
    for key in base_keys:
        for form in key_forms(key):
            assert form not in text


async def test_removed_participant_cannot_decrypt_anything_sent_after_removal(tmp_path):
    tap = Tap()
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(3)
        host, member, removed = [
            tap.attach(VoiceClient(u, IdentityKeys.generate(), send_pcm=tone(f)), n)
            for u, f, n in zip(urls, FREQS, ["host", "member", "removed"], strict=True)]
        for c in (host, member, removed):
            await c.start()
        await wait_for(lambda: all(c.summary.frames_received > 100 for c in (host, member, removed)))
        removed_receiver = removed.manager.receiver
        removed_pid = removed.participant_id
        old_host_key = host.manager.sender.key

        ws = host._ws
        await host._send(sig.Remove(removed_pid))
        await wait_for(lambda: removed.ended.is_set())
        assert removed.summary.ended == "removed"
        # the others moved to a new key generation
        await wait_for(lambda: host.manager.sender.key.generation > old_host_key.generation)
        removed_at = asyncio.get_running_loop().time()
        received_before = removed.summary.frames_received
        await asyncio.sleep(1.5)
        after = [p for name, t, p in tap.payloads if name in ("host", "member") and t > removed_at + 0.3]
        assert len(after) > 50
        assert removed.summary.frames_received == received_before  # the SFU sends it nothing
        # and even given every frame, the removed participant's keys open none of them
        opened = 0
        for p in after:
            try:
                removed_receiver.decrypt(p)
                opened += 1
            except SFrameError:
                pass
        assert opened == 0
        # the remaining two still hear each other
        assert host.manager.receiver.latest_key(member.manager.sender_id) is not None
        n = member.summary.frames_received
        await wait_for(lambda: member.summary.frames_received > n + 25)
        assert ws is not None

        # the removed person's link no longer works
        again = VoiceClient(urls[2], removed.identity)
        with pytest.raises(ConnectionError):
            await again.start()
        assert again.summary.ended == "token_revoked"
        await again.close()
        for c in (host, member, removed):
            await c.close()


class WrongKeyClient(VoiceClient):
    """Unwraps keys correctly, then installs a random key in their place."""

    async def _handle(self, message):
        if isinstance(message, sig.KeyFrom):
            key = self.manager.accept(WrappedKey.from_dict(message.blob))
            self.manager.receiver.remove_sender(key.sender_id)
            self.manager.receiver.add_key(
                SenderKey(key.sender_id, key.generation, key.ratchet_step, os.urandom(16)))
            return
        await super()._handle(message)


async def test_client_with_wrong_key_decrypts_nothing_and_records_silence(tmp_path):
    async with VoiceServer(tmp_path / "data") as server:
        urls = server.invite(2)
        speaker = VoiceClient(urls[0], IdentityKeys.generate(), send_pcm=tone(700.0))
        victim = WrongKeyClient(urls[1], IdentityKeys.generate())
        await speaker.start()
        await victim.start()
        await wait_for(lambda: victim.summary.frames_failed > 100, 20)
        assert victim.summary.frames_received == 0
        await speaker.close()
        await victim.close()
    recording = victim.mixer.pcm16(until=victim.closed_at)
    assert len(recording) > 48000 * 2  # the call's length ...
    assert not np.any(recording)  # ... of pure silence
