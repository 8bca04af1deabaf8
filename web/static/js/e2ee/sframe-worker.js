// Dedicated (module) worker that SFrame-encrypts outgoing and decrypts incoming encoded audio
// frames for Haven. Started by FrameCrypto (transform.js); one worker serves the sender and
// every receiver of a page, so there is one 64-bit send counter and one receive key store.
//
// Frames arrive either through RTCRtpScriptTransform ("rtctransform" event, options
// {role, label}) or as transferred streams from createEncodedStreams ({type: "pipe", ...}).
// Rules: empty frames pass untouched; a frame that cannot be encrypted (no key yet) or
// decrypted is DROPPED, never passed on in the clear, and counted.
//
// Messages from the page:
//   {type: "setSendKey", id, key}      {type: "addReceiveKey", id, key}
//   {type: "removeSender", id, senderId}   {type: "stats", id}
//   {type: "pipe", role: "send"|"recv", label, readable, writable}
// Replies: {type: "reply", id, ok, result?, error?}

import { SFrameReceiver, SFrameSender } from "./sframe.js";

const sender = new SFrameSender();
const receiver = new SFrameReceiver();
const stats = { encrypted: 0, decrypted: 0, failed: 0, sendDropped: 0, empty: 0, perLabel: {} };
const failureReasons = {};
let keyOps = Promise.resolve();

function labelStats(label) {
  const key = String(label);
  if (!Object.hasOwn(stats.perLabel, key)) stats.perLabel[key] = { decrypted: 0, failed: 0 };
  return stats.perLabel[key];
}

function reply(id, ok, extra) {
  if (id !== undefined && id !== null) self.postMessage({ type: "reply", id, ok, ...extra });
}

/** Key changes run one at a time, in the order the page sent them. */
function keyOp(id, fn) {
  keyOps = keyOps
    .then(fn)
    .then(
      (result) => reply(id, true, { result }),
      (err) => reply(id, false, { error: String(err && err.message ? err.message : err) }),
    );
}

function exactBuffer(bytes) {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
}

function countFailure(err) {
  const name = (err && err.name) || "Error";
  failureReasons[name] = (failureReasons[name] || 0) + 1;
}

function makeTransform(role, label) {
  const per = role === "recv" ? labelStats(label) : null;
  return new TransformStream({
    async transform(frame, controller) {
      await keyOps; // let key changes the page sent before this frame take effect first
      const data = new Uint8Array(frame.data);
      if (data.length === 0) {
        stats.empty++;
        controller.enqueue(frame);
        return;
      }
      if (role === "send") {
        let ct;
        try {
          ct = await sender.encrypt(data);
        } catch (err) {
          stats.sendDropped++;
          countFailure(err);
          return; // dropped: never sent unencrypted
        }
        frame.data = exactBuffer(ct);
        stats.encrypted++;
        controller.enqueue(frame);
      } else {
        let pt;
        try {
          pt = await receiver.decrypt(data);
        } catch (err) {
          stats.failed++;
          per.failed++;
          countFailure(err);
          return; // dropped
        }
        frame.data = exactBuffer(pt);
        stats.decrypted++;
        per.decrypted++;
        controller.enqueue(frame);
      }
    },
  });
}

function pipe(role, label, readable, writable) {
  if (role !== "send" && role !== "recv") {
    // Unknown role: never pass frames on untransformed.
    readable.cancel().catch(() => {});
    return;
  }
  readable
    .pipeThrough(makeTransform(role, label))
    .pipeTo(writable)
    .catch((err) => countFailure(err));
}

self.addEventListener("rtctransform", (event) => {
  const t = event.transformer;
  const options = t.options || {};
  pipe(options.role, options.label ?? "", t.readable, t.writable);
});

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  switch (msg.type) {
    case "setSendKey":
      keyOp(msg.id, () => sender.setKey(msg.key));
      break;
    case "addReceiveKey":
      keyOp(msg.id, () => receiver.addKey(msg.key));
      break;
    case "removeSender":
      keyOp(msg.id, () => receiver.removeSender(msg.senderId));
      break;
    case "stats":
      reply(msg.id, true, {
        result: {
          ...stats,
          perLabel: structuredClone(stats.perLabel),
          failureReasons: { ...failureReasons },
          sendKid: sender.kid,
          nextCounter: String(sender.nextCounter),
        },
      });
      break;
    case "pipe":
      pipe(msg.role, msg.label ?? "", msg.readable, msg.writable);
      break;
    default:
      reply(msg.id, false, { error: `unknown message type ${msg.type}` });
  }
});
