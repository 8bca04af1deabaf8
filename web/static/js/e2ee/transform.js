// SFrame encryption of Haven's Opus frames inside WebRTC (WebRTC Encoded Transform).
//
// Two browser APIs can carry the transform; encodedTransformSupport() says which one is used:
//   "script"  - RTCRtpScriptTransform, the standard (Firefox, Safari, Chromium): used wherever it
//               exists. rtpSender.transform / rtpReceiver.transform =
//               new RTCRtpScriptTransform(worker, {role, label}). Create the RTCPeerConnection
//               normally (WITHOUT encodedInsertableStreams).
//   "streams" - Chromium's older createEncodedStreams(): only the fallback where the standard
//               API is missing. The RTCPeerConnection MUST be created with
//               {encodedInsertableStreams: true}, or createEncodedStreams() throws.
// Attach BOTH transforms synchronously where the transceiver is created (right after
// addTrack()/addTransceiver(), before createOffer), for senders and receivers alike:
// Chromium 156 silently skips a receiver's script transform attached later (after the answer,
// or in the "track" event of the SFU's pre-allocated recvonly slots), and frames then reach
// the decoder without passing the transform. The session page also watches for that
// (packets arriving but no frame seen by the transform) and silences such a slot.
// Always build the configuration with peerConnectionConfig(base), which adds
// encodedInsertableStreams only for the "streams" path:
//
//     const fc = new FrameCrypto();                       // throws if E2EE is impossible
//     const pc = new RTCPeerConnection(peerConnectionConfig({iceServers}, fc.mode));
//     fc.attachSender(pc.addTransceiver(track, {direction: "sendonly"}).sender);
//     const slot = pc.addTransceiver("audio", {direction: "recvonly"});
//     fc.attachReceiver(slot.receiver, "slot-1");       // at once, not in ontrack
//
// Either way, frames are processed in one dedicated module Worker (sframe-worker.js); keys are
// posted to it. There is NO unencrypted fallback: without either API, encodedTransformSupport()
// returns null and the FrameCrypto constructor throws.

const DEFAULT_WORKER_URL = "/static/js/e2ee/sframe-worker.js";

function scriptSupported() {
  return typeof globalThis.RTCRtpScriptTransform === "function";
}

function streamsSupported() {
  return (
    typeof globalThis.RTCRtpSender === "function" &&
    typeof globalThis.RTCRtpReceiver === "function" &&
    typeof globalThis.RTCRtpSender.prototype.createEncodedStreams === "function" &&
    typeof globalThis.RTCRtpReceiver.prototype.createEncodedStreams === "function"
  );
}

/** "script" (RTCRtpScriptTransform, preferred), "streams" (createEncodedStreams) or null. */
export function encodedTransformSupport() {
  if (scriptSupported()) return "script";
  if (streamsSupported()) return "streams";
  return null;
}

/**
 * RTCPeerConnection configuration for the given transform path (default: the detected one):
 * a copy of `base` with encodedInsertableStreams: true added only for "streams".
 */
export function peerConnectionConfig(base = {}, mode = encodedTransformSupport()) {
  const config = { ...(base || {}) };
  if (mode === "streams") config.encodedInsertableStreams = true;
  else delete config.encodedInsertableStreams;
  return config;
}

function plainKey(senderKey) {
  if (!senderKey || typeof senderKey !== "object") throw new TypeError("expected a SenderKey");
  return {
    senderId: senderKey.senderId,
    generation: senderKey.generation,
    ratchetStep: senderKey.ratchetStep,
    baseKey: new Uint8Array(senderKey.baseKey),
    suite: senderKey.suite ?? 4,
  };
}

export class FrameCrypto {
  /**
   * @param {{workerUrl?: string, mode?: "script"|"streams"|null}} options
   *   mode forces a path (tests); default is encodedTransformSupport().
   */
  constructor({ workerUrl = DEFAULT_WORKER_URL, mode = null } = {}) {
    const detected = encodedTransformSupport();
    if (detected === null) {
      throw new Error(
        "End-to-end encryption is not possible in this browser: it supports neither " +
          "RTCRtpScriptTransform nor createEncodedStreams (WebRTC Encoded Transform). " +
          "Haven never sends voice unencrypted; please use a current Chrome, Edge, Firefox or Safari.",
      );
    }
    if (mode !== null && mode !== "script" && mode !== "streams") throw new Error(`unknown transform mode ${mode}`);
    if (mode === "script" && !scriptSupported()) throw new Error("RTCRtpScriptTransform is not supported here");
    if (mode === "streams" && !streamsSupported()) throw new Error("createEncodedStreams is not supported here");
    this.mode = mode ?? detected;
    this._nextId = 1;
    this._pending = new Map();
    this._error = null;
    this._closed = false;
    this._worker = new Worker(workerUrl, { type: "module", name: "haven-sframe" });
    this._worker.addEventListener("message", (ev) => this._onMessage(ev.data));
    this._worker.addEventListener("error", (ev) => {
      this._fail(new Error(`SFrame worker failed: ${ev.message || "could not load " + workerUrl}`));
    });
    this._worker.addEventListener("messageerror", () => this._fail(new Error("SFrame worker message error")));
  }

  _fail(err) {
    this._error = this._error || err;
    for (const { reject } of this._pending.values()) reject(this._error);
    this._pending.clear();
  }

  _onMessage(msg) {
    if (!msg || msg.type !== "reply") return;
    const p = this._pending.get(msg.id);
    if (!p) return;
    this._pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(msg.error));
  }

  _request(message, transfer = []) {
    if (this._closed) return Promise.reject(new Error("FrameCrypto is closed"));
    if (this._error) return Promise.reject(this._error);
    const id = this._nextId++;
    const promise = new Promise((resolve, reject) => this._pending.set(id, { resolve, reject }));
    this._worker.postMessage({ ...message, id }, transfer);
    return promise;
  }

  _attach(target, role, label) {
    if (this._closed) throw new Error("FrameCrypto is closed");
    if (this.mode === "script") {
      target.transform = new RTCRtpScriptTransform(this._worker, { role, label });
    } else {
      const { readable, writable } = target.createEncodedStreams();
      this._worker.postMessage({ type: "pipe", role, label, readable, writable }, [readable, writable]);
    }
  }

  /** SFrame-encrypt every outgoing frame of `rtpSender` (empty frames pass untouched). */
  attachSender(rtpSender) {
    this._attach(rtpSender, "send", "send");
  }

  /** Decrypt incoming frames; failing frames are dropped and counted under `label`. */
  attachReceiver(rtpReceiver, label = "") {
    this._attach(rtpReceiver, "recv", String(label));
  }

  /** Install our send key (manager.onSendKey). Resolves true once the worker uses it. */
  setSendKey(senderKey) {
    return this._request({ type: "setSendKey", key: plainKey(senderKey) }).catch(() => false);
  }

  /** Add a remote sender's key (manager.onReceiveKey). Resolves true if installed. */
  addReceiveKey(senderKey) {
    return this._request({ type: "addReceiveKey", key: plainKey(senderKey) }).catch(() => false);
  }

  /** Forget every key of `senderId` (manager.onRemoveSender). */
  removeSender(senderId) {
    return this._request({ type: "removeSender", senderId }).then(
      () => true,
      () => false,
    );
  }

  /** -> {encrypted, decrypted, failed, perLabel: {label: {decrypted, failed}}, ...} */
  async stats() {
    return this._request({ type: "stats" });
  }

  /** Stop the worker: no frame is processed (or passed on) any more. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._worker.terminate();
    this._fail(new Error("FrameCrypto is closed"));
  }
}
