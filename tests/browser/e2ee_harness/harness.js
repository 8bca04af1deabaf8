// Test harness for tests/browser/test_e2ee_interop.py: exposes window.H with JSON-friendly
// wrappers (bytes as hex) around the browser E2EE modules. CryptoKeys stay in the page.

import { hexDecode, hexEncode } from "/static/js/e2ee/encoding.js";
import { identityFromPrivateKeys, loadOrCreateIdentity, verifyCard } from "/static/js/e2ee/identity.js";
import { securityCode, securityDigest, wrapKeyBytes, wrapSenderKey, wrapAad, parseWrappedKey, x25519Shared } from "/static/js/e2ee/keyexchange.js";
import { SenderKeyManager } from "/static/js/e2ee/manager.js";
import {
  decodeHeader,
  deriveKeySalt,
  encodeHeader,
  generateSenderKey,
  hkdfExtract,
  makeNonce,
  makeSenderKey,
  SFrameKeyContext,
  SFrameReceiver,
  SFrameSender,
} from "/static/js/e2ee/sframe.js";
import { encodedTransformSupport, FrameCrypto, peerConnectionConfig } from "/static/js/e2ee/transform.js";

function keyOut(k) {
  return { senderId: k.senderId, generation: k.generation, ratchetStep: k.ratchetStep, baseKey: hexEncode(k.baseKey), kid: k.kid, suite: k.suite };
}

function keyIn(k) {
  return makeSenderKey(k.senderId, k.generation, k.ratchetStep, hexDecode(k.baseKey), k.suite ?? 4);
}

async function guard(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: err?.name ?? "Error", message: String(err?.message ?? err) };
  }
}

const H = {
  state: {},

  // ------------------------------------------------------------- SFrame vectors
  async headerVectors(vectors) {
    const out = [];
    for (const v of vectors) {
      const enc = hexEncode(encodeHeader(BigInt(v.kid), BigInt(v.ctr)));
      const dec = decodeHeader(hexDecode(v.encoded));
      out.push({ encoded: enc, kid: dec.kid.toString(), ctr: dec.ctr.toString(), length: dec.length });
    }
    return out;
  },

  async sframeVector(v) {
    const kid = BigInt(v.kid);
    const ctr = BigInt(v.ctr);
    const base = hexDecode(v.base_key);
    const secret = await hkdfExtract(v.cipher_suite, new Uint8Array(0), base);
    const { key, salt } = await deriveKeySalt(v.cipher_suite, kid, base);
    const ctx = await SFrameKeyContext.create(v.cipher_suite, kid, base);
    const ct = await ctx.encrypt(ctr, hexDecode(v.pt), hexDecode(v.metadata));
    const pt = await ctx.decrypt(hexDecode(v.ct), hexDecode(v.metadata));
    const header = encodeHeader(kid, ctr);
    const tampered = hexDecode(v.ct);
    tampered[tampered.length - 1] ^= 1;
    const bad = await guard(() => ctx.decrypt(tampered, hexDecode(v.metadata)));
    const badMeta = await guard(() => ctx.decrypt(hexDecode(v.ct), new Uint8Array(0)));
    return {
      sframe_secret: hexEncode(secret),
      sframe_key: hexEncode(key),
      sframe_salt: hexEncode(salt),
      nonce: hexEncode(makeNonce(salt, ctr)),
      aad: hexEncode(header) + v.metadata,
      ct: hexEncode(ct),
      pt: hexEncode(pt),
      tamperedError: bad.ok ? null : bad.error,
      badMetadataError: badMeta.ok ? null : badMeta.error,
    };
  },

  async headerErrors(hexes) {
    return hexes.map((h) => {
      try {
        decodeHeader(hexDecode(h));
        return null;
      } catch (err) {
        return err.name;
      }
    });
  },

  // ------------------------------------------------------------- identity
  async identity(storeName = "haven-test") {
    const id = await loadOrCreateIdentity(storeName);
    H.state.identity = id;
    const extractable = { sign: id.signKey.extractable, agree: id.agreeKey.extractable };
    const exports = {};
    for (const [name, key] of [["sign", id.signKey], ["agree", id.agreeKey]]) {
      for (const fmt of ["pkcs8", "jwk", "raw"]) {
        const r = await guard(() => crypto.subtle.exportKey(fmt, key));
        exports[`${name}-${fmt}`] = r.ok ? "exported" : r.error;
      }
    }
    return {
      card: id.card,
      ed25519: hexEncode(id.ed25519Public),
      x25519: hexEncode(id.x25519Public),
      extractable,
      exports,
      types: [id.signKey.type, id.signKey.algorithm.name, id.agreeKey.type, id.agreeKey.algorithm.name],
    };
  },

  async verifyCard(card) {
    return guard(async () => {
      const r = await verifyCard(card);
      return { ed25519: hexEncode(r.ed25519), x25519: hexEncode(r.x25519) };
    });
  },

  // ------------------------------------------------------------- documented example
  async docExample() {
    const seq = (start, n) => Uint8Array.from({ length: n }, (_, i) => start + i);
    const alice = await identityFromPrivateKeys(seq(0x00, 32), seq(0x20, 32));
    const bob = await identityFromPrivateKeys(seq(0x40, 32), seq(0x60, 32));
    const shared = await x25519Shared(alice.agreeKey, bob.x25519Public);
    const wrapKey = await wrapKeyBytes(shared, alice.x25519Public, bob.x25519Public);
    const key = makeSenderKey(1, 2, 3, seq(0, 16), 4);
    const blob = await wrapSenderKey(key, {
      roomId: "room-1",
      identity: alice,
      senderParticipantId: "p1",
      recipient: { participantId: "p2", x25519: bob.x25519Public },
      _nonce: seq(0, 12),
    });
    const bobMgr = new SenderKeyManager("room-1", bob, "p2", 2);
    await bobMgr.start([{ participant_id: "p1", sender_id: 1, identity: alice.card }]);
    const got = await bobMgr.accept(blob);
    return {
      aliceCard: alice.card,
      bob: { ed25519: hexEncode(bob.ed25519Public), x25519: hexEncode(bob.x25519Public) },
      shared: hexEncode(shared),
      wrapKey: hexEncode(wrapKey),
      aad: hexEncode(wrapAad(parseWrappedKey(blob))),
      blob,
      unwrapped: keyOut(got),
      digest: hexEncode(await securityDigest("room-1", [alice.card, bob.card])),
      code15: await securityCode("room-1", [alice.card, bob.card]),
      code12: await securityCode("room-1", [bob.card, alice.card], { digits: 12 }),
      mgrCode: await bobMgr.securityCode(),
    };
  },

  // ------------------------------------------------------------- manager
  async manager(roomId, participantId, senderId) {
    const m = new SenderKeyManager(roomId, H.state.identity, participantId, senderId);
    H.state.mgr = m;
    H.state.events = [];
    m.onSendKey = (k) => H.state.events.push({ type: "send", key: keyOut(k) });
    m.onReceiveKey = (k, pid) => H.state.events.push({ type: "recv", pid, key: keyOut(k) });
    m.onRemoveSender = (sid, pid) => H.state.events.push({ type: "remove", senderId: sid, pid });
    H.state.sender = new SFrameSender();
    H.state.receiver = new SFrameReceiver();
    return keyOut(m.sendKey);
  },
  async start(members) {
    return guard(() => H.state.mgr.start(members));
  },
  async memberJoined(member) {
    return guard(() => H.state.mgr.memberJoined(member));
  },
  async memberLeft(pid) {
    return guard(() => H.state.mgr.memberLeft(pid));
  },
  async setAudience(pids) {
    return guard(() => H.state.mgr.setAudience(pids));
  },
  async accept(blob) {
    return guard(async () => keyOut(await H.state.mgr.accept(blob)));
  },
  async events() {
    const e = H.state.events;
    H.state.events = [];
    return e;
  },
  async sendKey() {
    return keyOut(H.state.mgr.sendKey);
  },
  async securityCode(digits) {
    return H.state.mgr.securityCode(digits);
  },
  async rejectedMembers() {
    return H.state.mgr.rejectedMembers.map((r) => r.error.message);
  },

  // ------------------------------------------------------------- frames
  async setSendKey(key) {
    return H.state.sender.setKey(keyIn(key));
  },
  async encrypt(payloadsHex) {
    const out = [];
    for (const p of payloadsHex) out.push(hexEncode(await H.state.sender.encrypt(hexDecode(p))));
    return out;
  },
  async addReceiveKey(key) {
    return H.state.receiver.addKey(keyIn(key));
  },
  async removeSender(senderId) {
    H.state.receiver.removeSender(senderId);
  },
  async decrypt(framesHex) {
    const out = [];
    for (const f of framesHex) {
      const r = await guard(async () => hexEncode(await H.state.receiver.decrypt(hexDecode(f))));
      out.push(r.ok ? { ok: true, payload: r.value } : r);
    }
    return out;
  },

  /** Run receiver operations with a fake clock: [{op: "add"|"time"|"dec"|"remove", ...}]. */
  async receiverScript(ops) {
    let now = 1000;
    const rx = new SFrameReceiver({ clock: () => now });
    const out = [];
    for (const o of ops) {
      if (o.op === "time") now = 1000 + o.t;
      else if (o.op === "add") out.push(await rx.addKey(keyIn(o.key)));
      else if (o.op === "remove") rx.removeSender(o.senderId);
      else if (o.op === "dec") {
        const r = await guard(async () => hexEncode(await rx.decrypt(hexDecode(o.frame))));
        out.push(r.ok ? r.value : r.error);
      }
    }
    return { results: out, held: [...rx.heldKids()].sort((a, b) => a - b) };
  },

  // ------------------------------------------------------------- FrameCrypto loopback
  support() {
    return {
      detected: encodedTransformSupport(),
      script: typeof globalThis.RTCRtpScriptTransform === "function",
      streams:
        typeof globalThis.RTCRtpSender === "function" && typeof RTCRtpSender.prototype.createEncodedStreams === "function",
    };
  },

  async frameCryptoThrows() {
    return guard(() => new FrameCrypto());
  },

  async loopback({ mode, wrongKey = false, durationMs = 2500 }) {
    const fc = new FrameCrypto({ mode });
    const sendKey = generateSenderKey(5, 0);
    const installed = [await fc.setSendKey(sendKey), await fc.addReceiveKey(wrongKey ? generateSenderKey(5, 0) : sendKey)];
    const pc1 = new RTCPeerConnection(peerConnectionConfig({}, fc.mode));
    const pc2 = new RTCPeerConnection(peerConnectionConfig({}, fc.mode));
    pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
    pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
    const ctx = new AudioContext();
    await ctx.resume();
    const osc = ctx.createOscillator();
    osc.frequency.value = 440;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(dest);
    osc.start();
    const track = dest.stream.getAudioTracks()[0];
    const gotTrack = new Promise((resolve) => {
      pc2.ontrack = (e) => {
        fc.attachReceiver(e.receiver, "peer1");
        resolve(e);
      };
    });
    fc.attachSender(pc1.addTrack(track, dest.stream));
    await pc1.setLocalDescription();
    await pc2.setRemoteDescription(pc1.localDescription);
    await pc2.setLocalDescription();
    await pc1.setRemoteDescription(pc2.localDescription);
    const ev = await gotTrack;
    const stream = new MediaStream([ev.track]);
    // Chromium only feeds remote WebRTC audio into WebAudio while a media element plays it.
    const audio = new Audio();
    audio.muted = true;
    audio.srcObject = stream;
    await audio.play().catch(() => {});
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let maxRms = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < durationMs) {
      await new Promise((r) => setTimeout(r, 50));
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      maxRms = Math.max(maxRms, Math.sqrt(sum / buf.length));
    }
    const stats = await fc.stats();
    const iceState = pc1.iceConnectionState;
    let inbound = null;
    for (const r of (await pc2.getStats()).values()) if (r.type === "inbound-rtp") inbound = { packetsReceived: r.packetsReceived, bytesReceived: r.bytesReceived };
    fc.close();
    pc1.close();
    pc2.close();
    osc.stop();
    audio.srcObject = null;
    await ctx.close();
    return { mode: fc.mode, installed, stats, maxRms, iceState, inbound };
  },
};

window.H = H;
document.getElementById("status").textContent = "ready";
