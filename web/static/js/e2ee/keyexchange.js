// Wrapped sender keys and the security code (docs/protocol.md, "Wrapped sender key" and
// "Security code"); byte-compatible with media/e2ee.py.
//
// Wrapping (sender S -> recipient R):
//   shared   = X25519(s_x_private, R_x)                      (all-zero result rejected)
//   wrap_key = HKDF-SHA-256(salt = 32 zero bytes, shared, WRAP_KDF_LABEL || S_x || R_x, 32)
//   aad      = enc(WRAP_AAD_LABEL, room, from, to, sender_id, generation, ratchet_step, suite)
//   ct       = AES-256-GCM(wrap_key, nonce (12 random bytes), base_key, aad)
//   sig      = Ed25519-Sign(s_ed_private, enc(WRAP_SIG_LABEL, aad, nonce, ct))

import {
  b64uDecode,
  b64uEncode,
  canonicalEncode,
  checkId,
  compareBytes,
  concatBytes,
  EncodingError,
  isAllZero,
  isUint,
  toBytes,
  utf8,
} from "./encoding.js";
import { cardFingerprint, ed25519Verify, KeyExchangeError, verifyCard } from "./identity.js";
import { hkdf, makeSenderKey, MAX_GENERATION, MAX_RATCHET_STEP, MAX_SENDER_ID, SFrameConfigError } from "./sframe.js";

export { KeyExchangeError };

const subtle = globalThis.crypto.subtle;

export const WRAP_KDF_LABEL = utf8("haven/e2ee/v1 key-wrap");
export const WRAP_AAD_LABEL = utf8("haven/e2ee/v1 key-wrap aad");
export const WRAP_SIG_LABEL = utf8("haven/e2ee/v1 key-wrap signature");
export const CODE_LABEL = utf8("haven/e2ee/v1 security-code");
export const COMMIT_LABEL = utf8("haven/e2ee/v1 security-code commitment");
const ZERO_SALT = new Uint8Array(32);

const BLOB_FIELDS = ["ct", "from", "generation", "nonce", "ratchet_step", "room", "sender_id", "sig", "suite", "to", "v"];

function wrapError(fn) {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EncodingError || err instanceof SFrameConfigError) throw new KeyExchangeError(err.message);
    throw err;
  }
}

/**
 * Strictly parse a wrapped-key dict: exact fields, types, ranges, base64url and sizes.
 * -> {roomId, from, to, senderId, generation, ratchetStep, suite, nonce, ct, sig}
 */
export function parseWrappedKey(dict) {
  if (dict === null || typeof dict !== "object" || Array.isArray(dict)) throw new KeyExchangeError("wrapped key must be an object");
  const keys = Object.keys(dict).sort();
  if (keys.length !== BLOB_FIELDS.length || !keys.every((k, i) => k === BLOB_FIELDS[i])) {
    throw new KeyExchangeError(`wrapped key needs exactly the fields ${BLOB_FIELDS.join(", ")}`);
  }
  if (dict.v !== 1) throw new KeyExchangeError("unsupported wrapped key version");
  return wrapError(() => {
    checkId("room", dict.room);
    checkId("from", dict.from);
    checkId("to", dict.to);
    for (const [name, max] of [
      ["sender_id", MAX_SENDER_ID],
      ["generation", MAX_GENERATION],
      ["ratchet_step", MAX_RATCHET_STEP],
      ["suite", 0xffff],
    ]) {
      if (!isUint(dict[name], max)) throw new KeyExchangeError(`${name} must be an integer in 0..${max}`);
    }
    const nonce = b64uDecode(dict.nonce, { length: 12, what: "nonce" });
    const ct = b64uDecode(dict.ct, { what: "ct" });
    if (ct.length < 32 || ct.length > 80) throw new KeyExchangeError("ct must be 32..80 bytes");
    const sig = b64uDecode(dict.sig, { length: 64, what: "sig" });
    return {
      roomId: dict.room,
      from: dict.from,
      to: dict.to,
      senderId: dict.sender_id,
      generation: dict.generation,
      ratchetStep: dict.ratchet_step,
      suite: dict.suite,
      nonce,
      ct,
      sig,
    };
  });
}

export function wrappedKeyToDict(w) {
  return {
    v: 1,
    room: w.roomId,
    from: w.from,
    to: w.to,
    sender_id: w.senderId,
    generation: w.generation,
    ratchet_step: w.ratchetStep,
    suite: w.suite,
    nonce: b64uEncode(w.nonce),
    ct: b64uEncode(w.ct),
    sig: b64uEncode(w.sig),
  };
}

export function wrapAad(w) {
  return canonicalEncode(WRAP_AAD_LABEL, w.roomId, w.from, w.to, w.senderId, w.generation, w.ratchetStep, w.suite);
}

export function wrapSignedMessage(w) {
  return canonicalEncode(WRAP_SIG_LABEL, wrapAad(w), w.nonce, w.ct);
}

/** X25519(agreeKey, peerPublic) as 32 bytes; rejects low-order peers and all-zero secrets. */
export async function x25519Shared(agreeKey, peerPublic) {
  let bits;
  try {
    const peer = await subtle.importKey("raw", toBytes(peerPublic), { name: "X25519" }, false, []);
    bits = new Uint8Array(await subtle.deriveBits({ name: "X25519", public: peer }, agreeKey, 256));
  } catch {
    throw new KeyExchangeError("X25519 agreement failed (low-order public key)");
  }
  if (isAllZero(bits)) throw new KeyExchangeError("X25519 agreement produced the all-zero secret");
  return bits;
}

/** wrap_key bytes = HKDF-SHA-256(32 zero bytes, shared, WRAP_KDF_LABEL || senderX || recipientX, 32). */
export async function wrapKeyBytes(shared, senderX, recipientX) {
  return hkdf("SHA-256", shared, ZERO_SALT, concatBytes(WRAP_KDF_LABEL, senderX, recipientX), 32);
}

async function wrapCryptoKey(agreeKey, peerX, senderX, recipientX) {
  const shared = await x25519Shared(agreeKey, peerX);
  const raw = await wrapKeyBytes(shared, senderX, recipientX);
  shared.fill(0);
  const key = await subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  raw.fill(0);
  return key;
}

/**
 * Encrypt `key` (a SenderKey) for `recipient` ({participantId, x25519: Uint8Array} from a
 * verified card) and sign it. -> wrapped-key dict (JSON-ready, includes "to").
 * `_nonce` exists only to reproduce the documented example.
 */
export async function wrapSenderKey(key, { roomId, identity, senderParticipantId, recipient, _nonce = null }) {
  const w = wrapError(() => {
    checkId("room", roomId);
    checkId("from", senderParticipantId);
    checkId("to", recipient.participantId);
    const k = makeSenderKey(key.senderId, key.generation, key.ratchetStep, key.baseKey, key.suite ?? 4);
    return {
      roomId,
      from: senderParticipantId,
      to: recipient.participantId,
      senderId: k.senderId,
      generation: k.generation,
      ratchetStep: k.ratchetStep,
      suite: k.suite,
      nonce: _nonce ? toBytes(_nonce) : globalThis.crypto.getRandomValues(new Uint8Array(12)),
      baseKey: k.baseKey,
    };
  });
  if (w.nonce.length !== 12) throw new KeyExchangeError("nonce must be 12 bytes");
  const wrapKey = await wrapCryptoKey(identity.agreeKey, recipient.x25519, identity.x25519Public, recipient.x25519);
  w.ct = new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: w.nonce, additionalData: wrapAad(w), tagLength: 128 }, wrapKey, w.baseKey),
  );
  w.sig = new Uint8Array(await subtle.sign({ name: "Ed25519" }, identity.signKey, wrapSignedMessage(w)));
  return wrappedKeyToDict(w);
}

/**
 * Check and decrypt a wrapped-key dict from `sender` (the ROSTER entry:
 * {participantId, senderId, ed25519, x25519} from its verified card, never from the blob).
 * -> SenderKey {senderId, generation, ratchetStep, baseKey, kid, suite}; throws KeyExchangeError.
 */
export async function unwrapSenderKey(blobDict, { roomId, identity, recipientParticipantId, sender }) {
  const w = parseWrappedKey(blobDict);
  if (w.roomId !== roomId) throw new KeyExchangeError("wrapped key is for another room");
  if (w.to !== recipientParticipantId) throw new KeyExchangeError("wrapped key is for another recipient");
  if (w.from !== sender.participantId) throw new KeyExchangeError("wrapped key names another sender");
  if (w.senderId !== sender.senderId) throw new KeyExchangeError("wrapped key's SFrame sender id does not match the roster");
  if (!(await ed25519Verify(sender.ed25519, w.sig, wrapSignedMessage(w)))) {
    throw new KeyExchangeError("wrapped key signature does not verify");
  }
  const wrapKey = await wrapCryptoKey(identity.agreeKey, sender.x25519, sender.x25519, identity.x25519Public);
  let baseKey;
  try {
    baseKey = new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv: w.nonce, additionalData: wrapAad(w), tagLength: 128 }, wrapKey, w.ct),
    );
  } catch {
    throw new KeyExchangeError("wrapped key does not decrypt (wrong recipient key or altered)");
  }
  try {
    return makeSenderKey(w.senderId, w.generation, w.ratchetStep, baseKey, w.suite);
  } catch (err) {
    throw new KeyExchangeError(`wrapped key content invalid: ${err.message}`);
  } finally {
    baseKey.fill(0);
  }
}

// ----------------------------------------------------------------------------- security code

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", bytes));
}

/** SHA-256 commitment to (card, 32-byte contribution) for the commit-then-reveal round. */
export async function commitment(roomId, cardDict, contribution) {
  const c = toBytes(contribution);
  if (c.length !== 32) throw new RangeError("contribution must be 32 bytes");
  await verifyCard(cardDict);
  return sha256(canonicalEncode(COMMIT_LABEL, roomId, cardFingerprint(cardDict), c));
}

/** The digest the security code is made from (exposed for tests). */
export async function securityDigest(roomId, cardDicts, contributions = []) {
  wrapError(() => checkId("room_id", roomId));
  const prints = [];
  for (const card of cardDicts) {
    await verifyCard(card);
    prints.push(cardFingerprint(card));
  }
  if (!prints.length) throw new RangeError("a security code needs at least one identity card");
  prints.sort(compareBytes);
  const extras = [...contributions].map((c) => toBytes(c));
  if (extras.some((c) => c.length !== 32)) throw new RangeError("contributions must be 32 bytes each");
  extras.sort(compareBytes);
  return sha256(canonicalEncode(CODE_LABEL, roomId, prints.length, ...prints, extras.length, ...extras));
}

/**
 * Short decimal code over the room id and everyone's identity cards (order independent),
 * identical to media.e2ee.security_code. `digits`: 12..60, a multiple of 3 or 4.
 */
export async function securityCode(roomId, cardDicts, { digits = 15, contributions = [] } = {}) {
  if (!Number.isInteger(digits) || digits < 12 || digits > 60 || (digits % 4 && digits % 3)) {
    throw new RangeError("digits must be 12..60 and a multiple of 3 or 4");
  }
  const digest = await securityDigest(roomId, cardDicts, contributions);
  let n = 0n;
  for (const byte of digest) n = (n << 8n) | BigInt(byte);
  const number = (n % 10n ** BigInt(digits)).toString().padStart(digits, "0");
  const group = digits % 4 === 0 ? 4 : 3;
  const parts = [];
  for (let i = 0; i < digits; i += group) parts.push(number.slice(i, i + group));
  return parts.join(" ");
}
