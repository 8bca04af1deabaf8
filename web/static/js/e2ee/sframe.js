// SFrame (RFC 9605) for Haven voice, in WebCrypto. Byte-for-byte compatible with
// media/sframe.py; see docs/protocol.md, "SFrame parameters and KID layout".
//
// * Header codec of RFC 9605 §4.3 (strict: truncated input and non-minimal encodings throw).
//   KID and CTR are 64-bit values; the codec takes numbers or BigInts and returns BigInts.
// * Key/salt derivation of §4.4.2 (HKDF with an empty salt), nonce = salt XOR u96(CTR),
//   AAD = header || metadata (Haven uses empty metadata).
// * Cipher suites 0x0004 (AES_128_GCM_SHA256_128, Haven's) and 0x0005 (AES_256_GCM_SHA512_128).
// * Haven KID layout: KID = (sender_id << 12) | ((generation % 128) << 5) | (ratchet_step % 32),
//   and the §5.1 ratchet: base_key[i+1] = HKDF-Expand(HKDF-Extract("", base_key[i]), "SFrame 1.0 Ratchet", Nh).
// * SFrameSender: one 64-bit counter (BigInt) that never goes back, across keys.
// * SFrameReceiver: keys of every remote sender, derive-ahead of up to 16 ratchet steps (kept
//   only if the frame authenticates), a grace period (5 s) for superseded keys and a
//   replay window (128) per KID. Same rules as media.sframe.SFrameReceiver.
//
// Works in pages and in workers (no DOM). Derived AES-GCM keys are non-extractable CryptoKeys
// cached per KID.

import { concatBytes, copyBytes, toBytes, utf8 } from "./encoding.js";

const subtle = globalThis.crypto.subtle;

// ----------------------------------------------------------------------------- errors

export class SFrameError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}
export class SFrameConfigError extends SFrameError {}
export class CounterExhaustedError extends SFrameError {}
export class SFrameHeaderError extends SFrameError {}
export class SFrameDecryptError extends SFrameError {}
export class MalformedFrameError extends SFrameDecryptError {}
export class UnknownKeyError extends SFrameDecryptError {}
export class ReplayError extends SFrameDecryptError {}
export class AuthenticationError extends SFrameDecryptError {}
export class UnexpectedSenderError extends SFrameDecryptError {}
export class NoSendKeyError extends SFrameError {}

// ----------------------------------------------------------------------------- constants

export const AES_128_GCM_SHA256_128 = 0x0004;
export const AES_256_GCM_SHA512_128 = 0x0005;

export const CIPHER_SUITES = Object.freeze({
  4: Object.freeze({ id: 4, name: "AES_128_GCM_SHA256_128", hash: "SHA-256", nh: 32, nk: 16, nn: 12, nt: 16 }),
  5: Object.freeze({ id: 5, name: "AES_256_GCM_SHA512_128", hash: "SHA-512", nh: 64, nk: 32, nn: 12, nt: 16 }),
});

export const MAX_U64 = 0xffffffffffffffffn;
export const MAX_COUNTER = MAX_U64;
export const SENDER_ID_BITS = 12;
export const GENERATION_BITS = 7;
export const RATCHET_BITS = 5;
export const MAX_SENDER_ID = (1 << SENDER_ID_BITS) - 1;
export const MAX_GENERATION = 2 ** 32 - 1;
export const MAX_RATCHET_STEP = 2 ** 32 - 1;
const GEN_MASK = (1 << GENERATION_BITS) - 1;
const STEP_MASK = (1 << RATCHET_BITS) - 1;
const HAVEN_KID_BITS = SENDER_ID_BITS + GENERATION_BITS + RATCHET_BITS;
const EMPTY = new Uint8Array(0);

export function getCipherSuite(suite) {
  const cs = typeof suite === "object" && suite !== null ? suite : CIPHER_SUITES[suite];
  if (!cs || !CIPHER_SUITES[cs.id]) throw new SFrameConfigError(`unsupported SFrame cipher suite ${suite}`);
  return cs;
}

// ----------------------------------------------------------------------------- header

function toU64(name, value) {
  let big;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number" && Number.isSafeInteger(value)) big = BigInt(value);
  else throw new SFrameConfigError(`${name} must be an integer`);
  if (big < 0n || big > MAX_U64) throw new SFrameConfigError(`${name} must be in 0..2^64-1`);
  return big;
}

function byteLength(big) {
  let n = 0;
  while (big > 0n) {
    big >>= 8n;
    n++;
  }
  return n;
}

function bigToBytes(big, n) {
  const out = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(big & 0xffn);
    big >>= 8n;
  }
  return out;
}

function bytesToBig(bytes, start, end) {
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

/** Encode an SFrame header (RFC 9605 §4.3) with minimal-length KID and CTR. */
export function encodeHeader(kid, ctr) {
  kid = toU64("KID", kid);
  ctr = toU64("CTR", ctr);
  let config;
  let kidBytes = EMPTY;
  let ctrBytes = EMPTY;
  if (kid < 8n) {
    config = Number(kid) << 4;
  } else {
    const n = byteLength(kid);
    config = 0x80 | ((n - 1) << 4);
    kidBytes = bigToBytes(kid, n);
  }
  if (ctr < 8n) {
    config |= Number(ctr);
  } else {
    const n = byteLength(ctr);
    config |= 0x08 | (n - 1);
    ctrBytes = bigToBytes(ctr, n);
  }
  return concatBytes(Uint8Array.of(config), kidBytes, ctrBytes);
}

/** Parse the header at the start of `data`: {kid: BigInt, ctr: BigInt, length}. */
export function decodeHeader(data) {
  const b = toBytes(data);
  if (b.length === 0) throw new SFrameHeaderError("empty input: no SFrame header");
  const config = b[0];
  let pos = 1;
  let kid;
  let ctr;
  if (config & 0x80) {
    const n = ((config >> 4) & 0x07) + 1;
    const end = pos + n;
    if (b.length < end) throw new SFrameHeaderError(`truncated header: KID needs ${n} bytes`);
    if (n > 1 && b[pos] === 0) throw new SFrameHeaderError("non-minimal KID encoding (leading zero byte)");
    kid = bytesToBig(b, pos, end);
    if (kid < 8n) throw new SFrameHeaderError("non-minimal KID encoding (value < 8 in extended form)");
    pos = end;
  } else {
    kid = BigInt((config >> 4) & 0x07);
  }
  if (config & 0x08) {
    const n = (config & 0x07) + 1;
    const end = pos + n;
    if (b.length < end) throw new SFrameHeaderError(`truncated header: CTR needs ${n} bytes`);
    if (n > 1 && b[pos] === 0) throw new SFrameHeaderError("non-minimal CTR encoding (leading zero byte)");
    ctr = bytesToBig(b, pos, end);
    if (ctr < 8n) throw new SFrameHeaderError("non-minimal CTR encoding (value < 8 in extended form)");
    pos = end;
  } else {
    ctr = BigInt(config & 0x07);
  }
  return { kid, ctr, length: pos };
}

// ----------------------------------------------------------------------------- key schedule

/** HKDF-Extract(salt, ikm) via HMAC (only needed to check published intermediate values). */
export async function hkdfExtract(suite, salt, ikm) {
  const cs = getCipherSuite(suite);
  // RFC 5869: an empty salt is HashLen zero bytes (HMAC zero-pads keys, so it is identical).
  const keyBytes = salt && salt.length ? toBytes(salt) : new Uint8Array(cs.nh);
  const key = await subtle.importKey("raw", keyBytes, { name: "HMAC", hash: cs.hash }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", key, toBytes(ikm)));
}

async function hkdfMany(hash, ikm, salt, requests) {
  const key = await subtle.importKey("raw", toBytes(ikm), "HKDF", false, ["deriveBits"]);
  return Promise.all(
    requests.map(
      async ([info, length]) =>
        new Uint8Array(await subtle.deriveBits({ name: "HKDF", hash, salt, info }, key, length * 8)),
    ),
  );
}

/** Full HKDF-SHA-* (extract + expand) as used by the key exchange. */
export async function hkdf(hash, ikm, salt, info, length) {
  const [out] = await hkdfMany(hash, ikm, toBytes(salt), [[toBytes(info), length]]);
  return out;
}

function labelTail(kid, suiteId) {
  const tail = new Uint8Array(10);
  const dv = new DataView(tail.buffer);
  dv.setBigUint64(0, toU64("KID", kid), false);
  dv.setUint16(8, suiteId, false);
  return tail;
}

const KEY_LABEL = utf8("SFrame 1.0 Secret key ");
const SALT_LABEL = utf8("SFrame 1.0 Secret salt ");
const RATCHET_LABEL = utf8("SFrame 1.0 Ratchet");

/** RFC 9605 §4.4.2: {key, salt} (raw bytes) for `baseKey` under `kid`. */
export async function deriveKeySalt(suite, kid, baseKey) {
  const cs = getCipherSuite(suite);
  const tail = labelTail(kid, cs.id);
  const [key, salt] = await hkdfMany(cs.hash, baseKey, EMPTY, [
    [concatBytes(KEY_LABEL, tail), cs.nk],
    [concatBytes(SALT_LABEL, tail), cs.nn],
  ]);
  return { key, salt };
}

/** RFC 9605 §5.1: the next base key (Nh bytes). */
export async function ratchetBaseKey(suite, baseKey) {
  const cs = getCipherSuite(suite);
  const [next] = await hkdfMany(cs.hash, baseKey, EMPTY, [[RATCHET_LABEL, cs.nh]]);
  return next;
}

/** nonce = salt XOR u96(ctr). */
export function makeNonce(salt, ctr) {
  const nonce = copyBytes(salt);
  const dv = new DataView(nonce.buffer, nonce.byteOffset, nonce.byteLength);
  dv.setBigUint64(4, dv.getBigUint64(4, false) ^ toU64("CTR", ctr), false);
  return nonce;
}

/** Derived AES-GCM key (non-extractable CryptoKey) and salt for one (KID, base key). */
export class SFrameKeyContext {
  constructor(suite, kid, aesKey, salt) {
    this.suite = getCipherSuite(suite);
    this.kid = toU64("KID", kid);
    this.aesKey = aesKey;
    this.salt = salt;
    // The KID half of the header never changes; only the CTR part does.
    this._kidHeader = encodeHeader(this.kid, 0n);
  }

  static async create(suite, kid, baseKey) {
    const cs = getCipherSuite(suite);
    const { key, salt } = await deriveKeySalt(cs, kid, baseKey);
    const aesKey = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
    key.fill(0);
    return new SFrameKeyContext(cs, kid, aesKey, salt);
  }

  nonce(ctr) {
    return makeNonce(this.salt, ctr);
  }

  header(ctr) {
    return encodeHeader(this.kid, ctr);
  }

  /** header || AES-GCM(plaintext) with AAD = header || metadata. */
  async encrypt(ctr, plaintext, metadata = EMPTY) {
    const header = this.header(ctr);
    const ct = await subtle.encrypt(
      { name: "AES-GCM", iv: this.nonce(ctr), additionalData: concatBytes(header, metadata), tagLength: 128 },
      this.aesKey,
      toBytes(plaintext),
    );
    return concatBytes(header, new Uint8Array(ct));
  }

  /** Decrypt a body whose header is already parsed; throws AuthenticationError. */
  async open(header, ctr, body, metadata = EMPTY) {
    try {
      const pt = await subtle.decrypt(
        { name: "AES-GCM", iv: this.nonce(ctr), additionalData: concatBytes(header, metadata), tagLength: 128 },
        this.aesKey,
        toBytes(body),
      );
      return new Uint8Array(pt);
    } catch (err) {
      if (err && err.name === "OperationError") throw new AuthenticationError("authentication tag mismatch");
      throw err;
    }
  }

  /** Decrypt a whole SFrame ciphertext made with this context's KID. */
  async decrypt(data, metadata = EMPTY) {
    const b = toBytes(data);
    let h;
    try {
      h = decodeHeader(b);
    } catch (err) {
      throw new MalformedFrameError(err.message);
    }
    if (h.kid !== this.kid) throw new UnknownKeyError(`frame has KID ${h.kid}, context holds KID ${this.kid}`);
    if (b.length - h.length < this.suite.nt) throw new MalformedFrameError("ciphertext shorter than the authentication tag");
    return this.open(b.subarray(0, h.length), h.ctr, b.subarray(h.length), metadata);
  }
}

// ----------------------------------------------------------------------------- Haven KIDs and sender keys

function checkUint(name, value, max) {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new SFrameConfigError(`${name} must be an integer in 0..${max}`);
  }
}

/** Haven KID: sender id (12 bits) | generation mod 128 (7 bits) | step mod 32 (5 bits). */
export function makeKid(senderId, generation, ratchetStep) {
  checkUint("sender id", senderId, MAX_SENDER_ID);
  checkUint("generation", generation, Number.MAX_SAFE_INTEGER);
  checkUint("ratchet step", ratchetStep, Number.MAX_SAFE_INTEGER);
  return (senderId << (GENERATION_BITS + RATCHET_BITS)) | ((generation % 128) << RATCHET_BITS) | (ratchetStep % 32);
}

/** Inverse of makeKid: {senderId, generation (mod 128), ratchetStep (mod 32)}. */
export function splitKid(kid) {
  kid = Number(kid);
  if (!Number.isInteger(kid) || kid < 0 || kid >= 2 ** HAVEN_KID_BITS) {
    throw new SFrameConfigError("KID is outside Haven's 24-bit layout");
  }
  return { senderId: kid >> (GENERATION_BITS + RATCHET_BITS), generation: (kid >> RATCHET_BITS) & GEN_MASK, ratchetStep: kid & STEP_MASK };
}

/**
 * A sender's base key at (generation, ratchet step): a plain, structured-cloneable object
 * {senderId, generation, ratchetStep, baseKey: Uint8Array, kid, suite}. Validates like
 * media.sframe.SenderKey (16..32-byte base key for suite 4).
 */
export function makeSenderKey(senderId, generation, ratchetStep, baseKey, suite = AES_128_GCM_SHA256_128) {
  checkUint("sender_id", senderId, MAX_SENDER_ID);
  checkUint("generation", generation, MAX_GENERATION);
  checkUint("ratchet_step", ratchetStep, MAX_RATCHET_STEP);
  const cs = getCipherSuite(suite);
  let bytes;
  try {
    bytes = copyBytes(baseKey);
  } catch {
    throw new SFrameConfigError("base_key must be bytes");
  }
  if (bytes.length < Math.max(cs.nk, 16) || bytes.length > Math.max(cs.nk, cs.nh)) {
    throw new SFrameConfigError(`base_key of ${bytes.length} bytes unfit for ${cs.name}`);
  }
  return { senderId, generation, ratchetStep, baseKey: bytes, kid: makeKid(senderId, generation, ratchetStep), suite: cs.id };
}

/** Re-validate a SenderKey-like object (e.g. after postMessage). */
export function normalizeSenderKey(key) {
  if (!key || typeof key !== "object") throw new SFrameConfigError("not a sender key");
  return makeSenderKey(key.senderId, key.generation, key.ratchetStep, key.baseKey, key.suite ?? AES_128_GCM_SHA256_128);
}

/** A fresh random base key (Nk bytes from crypto.getRandomValues) at step 0. */
export function generateSenderKey(senderId, generation = 0, suite = AES_128_GCM_SHA256_128) {
  const cs = getCipherSuite(suite);
  return makeSenderKey(senderId, generation, 0, globalThis.crypto.getRandomValues(new Uint8Array(cs.nk)), cs.id);
}

/** The key `steps` ratchet steps later (one-way). */
export async function ratchetSenderKey(key, steps = 1) {
  if (!Number.isInteger(steps) || steps < 0) throw new SFrameConfigError("the ratchet only moves forward");
  let base = key.baseKey;
  for (let i = 0; i < steps; i++) base = await ratchetBaseKey(key.suite, base);
  return makeSenderKey(key.senderId, key.generation, key.ratchetStep + steps, base, key.suite);
}

function isNewer(a, b) {
  return a.generation > b.generation || (a.generation === b.generation && a.ratchetStep > b.ratchetStep);
}

// ----------------------------------------------------------------------------- sender

/** Encrypts our frames; owns our current key and the 64-bit counter (BigInt). */
export class SFrameSender {
  constructor({ nextCounter = 0n } = {}) {
    this._ctr = toU64("next counter", nextCounter);
    this._exhausted = false;
    this._key = null;
    this._ctx = null;
    this._seq = 0;
  }

  static async create(key, options = {}) {
    const s = new SFrameSender(options);
    await s.setKey(key);
    return s;
  }

  get key() {
    return this._key;
  }

  get kid() {
    return this._key ? this._key.kid : null;
  }

  get nextCounter() {
    return this._ctr;
  }

  /** Install `key` (derives its context first). The most recently requested key wins. */
  async setKey(key) {
    const k = normalizeSenderKey(key);
    const seq = ++this._seq;
    const ctx = await SFrameKeyContext.create(k.suite, k.kid, k.baseKey);
    if (seq !== this._seq) return false; // a newer setKey was requested meanwhile
    this._key = k;
    this._ctx = ctx;
    return true;
  }

  /** Encrypt one frame. Empty frames (DTX) are returned as empty, unencrypted. */
  async encrypt(frame, metadata = EMPTY) {
    const data = toBytes(frame);
    if (data.length === 0) return new Uint8Array(0);
    const ctx = this._ctx;
    if (ctx === null) throw new NoSendKeyError("no send key installed");
    if (this._exhausted) throw new CounterExhaustedError("64-bit SFrame counter exhausted; install a new key");
    const ctr = this._ctr; // consume the counter before use (RFC 9605 §9.1)
    if (ctr === MAX_COUNTER) this._exhausted = true;
    else this._ctr = ctr + 1n;
    return ctx.encrypt(ctr, data, metadata);
  }
}

// ----------------------------------------------------------------------------- receiver

class RecvKey {
  constructor(key, ctx) {
    this.key = key;
    this.kid = key.kid;
    this.senderId = key.senderId;
    this.generation = key.generation;
    this.step = key.ratchetStep;
    this.ctx = ctx;
    this.expiresAt = null;
    this.maxCtr = -1n;
    this.seen = 0n; // bit i set <=> counter (maxCtr - i) was accepted
  }
}

const defaultClock = () => performance.now() / 1000;

/**
 * Key store and decryptor for every remote sender of a room (media.sframe.SFrameReceiver).
 */
export class SFrameReceiver {
  constructor({
    suite = AES_128_GCM_SHA256_128,
    gracePeriod = 5.0,
    replayWindow = 128,
    maxRatchetAhead = 16,
    clock = defaultClock,
  } = {}) {
    this.suite = getCipherSuite(suite);
    if (!(gracePeriod >= 0)) throw new SFrameConfigError("gracePeriod must be >= 0");
    if (!Number.isInteger(replayWindow) || replayWindow < 1 || replayWindow > 65536) {
      throw new SFrameConfigError("replayWindow must be in 1..65536");
    }
    if (!Number.isInteger(maxRatchetAhead) || maxRatchetAhead < 0 || maxRatchetAhead > 16) {
      throw new SFrameConfigError("maxRatchetAhead must be in 0..16");
    }
    this.gracePeriod = gracePeriod;
    this.replayWindow = replayWindow;
    this.maxRatchetAhead = maxRatchetAhead;
    this._clock = clock;
    this._windowMask = (1n << BigInt(replayWindow)) - 1n;
    this._keys = new Map(); // kid (number) -> RecvKey
    this._latest = new Map(); // sender id -> newest SenderKey held
    this._derived = new Map(); // kid -> {latest, promise}: derive-ahead memo, never used as a held key
    this.framesOk = 0;
    this.framesFailed = 0;
  }

  // -- key management -----------------------------------------------------------

  /** Install a sender key; resolves false if it is not newer than what is held. */
  async addKey(key) {
    const k = normalizeSenderKey(key);
    if (k.suite !== this.suite.id) throw new SFrameConfigError("key cipher suite differs from the receiver's");
    const before = this._latest.get(k.senderId);
    if (before && !isNewer(k, before)) return false;
    const ctx = await SFrameKeyContext.create(k.suite, k.kid, k.baseKey);
    const latest = this._latest.get(k.senderId); // re-check: state may have changed meanwhile
    if (latest && !isNewer(k, latest)) return false;
    const now = this._clock();
    if (latest) this._retire(k.senderId, now);
    this._install(k, new RecvKey(k, ctx));
    this.prune(now);
    return true;
  }

  _install(key, entry) {
    this._keys.set(key.kid, entry);
    this._latest.set(key.senderId, key);
    this._derived.clear();
  }

  _retire(senderId, now) {
    const deadline = now + this.gracePeriod;
    for (const e of this._keys.values()) {
      if (e.senderId === senderId && (e.expiresAt === null || e.expiresAt > deadline)) e.expiresAt = deadline;
    }
  }

  /** Forget every key of `senderId` immediately. */
  removeSender(senderId) {
    this._latest.delete(senderId);
    for (const [kid, e] of [...this._keys]) if (e.senderId === senderId) this._keys.delete(kid);
    this._derived.clear();
  }

  /** Drop keys whose grace period has ended. */
  prune(now = this._clock()) {
    for (const [kid, e] of [...this._keys]) if (e.expiresAt !== null && e.expiresAt <= now) this._keys.delete(kid);
  }

  heldKids() {
    return new Set(this._keys.keys());
  }

  latestKey(senderId) {
    return this._latest.get(senderId) ?? null;
  }

  // -- decryption -----------------------------------------------------------------

  /** Decrypt one SFrame ciphertext to its payload; throws SFrameDecryptError on failure. */
  async decrypt(data, metadata = EMPTY, { expectedSender = null } = {}) {
    if (toBytes(data).length === 0) return new Uint8Array(0);
    return (await this.decryptFrame(data, metadata, { expectedSender })).payload;
  }

  /** -> {senderId, generation, ratchetStep, counter (BigInt), payload}. */
  async decryptFrame(data, metadata = EMPTY, { expectedSender = null } = {}) {
    try {
      const result = await this._decrypt(toBytes(data), toBytes(metadata), expectedSender);
      this.framesOk++;
      return result;
    } catch (err) {
      if (err instanceof SFrameDecryptError) this.framesFailed++;
      throw err;
    }
  }

  _replayCheck(entry, ctr) {
    if (ctr <= entry.maxCtr) {
      const age = entry.maxCtr - ctr;
      if (age >= BigInt(this.replayWindow)) throw new ReplayError(`counter ${ctr} is older than the replay window`);
      if ((entry.seen >> age) & 1n) throw new ReplayError(`counter ${ctr} already received`);
    }
  }

  async _decrypt(data, metadata, expectedSender) {
    if (data.length === 0) throw new MalformedFrameError("empty input");
    let h;
    try {
      h = decodeHeader(data);
    } catch (err) {
      throw new MalformedFrameError(err.message);
    }
    if (data.length - h.length < this.suite.nt) throw new MalformedFrameError("ciphertext shorter than the authentication tag");
    if (expectedSender !== null && h.kid >> BigInt(GENERATION_BITS + RATCHET_BITS) !== BigInt(expectedSender)) {
      throw new UnexpectedSenderError(`KID ${h.kid} is not from sender ${expectedSender}`);
    }
    if (h.kid >= BigInt(2 ** HAVEN_KID_BITS)) throw new UnknownKeyError(`no key for KID ${h.kid}`);
    const kid = Number(h.kid);
    const ctr = h.ctr;

    let entry = this._keys.get(kid);
    let pending = null;
    if (entry && entry.expiresAt !== null && entry.expiresAt <= this._clock()) {
      this._keys.delete(kid);
      entry = undefined;
    }
    if (!entry) {
      pending = await this._deriveAhead(kid);
      if (!pending) throw new UnknownKeyError(`no key for KID ${kid}`);
      entry = this._keys.get(kid) ?? new RecvKey(pending.key, pending.ctx); // re-check after await
      if (this._keys.get(kid) === entry) pending = null;
    }

    this._replayCheck(entry, ctr); // before spending time on the AEAD
    const payload = await entry.ctx.open(data.subarray(0, h.length), ctr, data.subarray(h.length), metadata);

    // State may have changed while we awaited the AEAD.
    if (pending === null) {
      if (this._keys.get(kid) !== entry) throw new UnknownKeyError(`key for KID ${kid} was removed`);
    } else {
      const held = this._keys.get(kid);
      const latest = this._latest.get(entry.senderId);
      if (held) entry = held;
      else if (!latest) throw new UnknownKeyError(`sender of KID ${kid} was removed`);
    }
    this._replayCheck(entry, ctr);
    if (ctr > entry.maxCtr) {
      const shift = ctr - entry.maxCtr;
      entry.seen = shift < BigInt(this.replayWindow) ? ((entry.seen << shift) | 1n) & this._windowMask : 1n;
      entry.maxCtr = ctr;
    } else {
      entry.seen |= 1n << (entry.maxCtr - ctr);
    }
    if (pending !== null && this._keys.get(kid) !== entry) {
      // The frame authenticated under the derived key: commit the ratchet.
      const latest = this._latest.get(entry.senderId);
      if (latest && isNewer(entry.key, latest)) {
        const now = this._clock();
        this._retire(entry.senderId, now);
        this._install(entry.key, entry);
        this.prune(now);
      }
    }
    return { senderId: entry.senderId, generation: entry.generation, ratchetStep: entry.step, counter: ctr, payload };
  }

  _deriveAhead(kid) {
    const { senderId, generation: genLow, ratchetStep: stepLow } = splitKid(kid);
    const latest = this._latest.get(senderId);
    if (!latest) return null;
    if ((latest.generation & GEN_MASK) !== genLow) return null;
    const delta = (stepLow - latest.ratchetStep) & STEP_MASK;
    if (delta === 0 || delta > this.maxRatchetAhead) return null;
    if (latest.ratchetStep + delta > MAX_RATCHET_STEP) return null;
    const memo = this._derived.get(kid);
    if (memo && memo.latest === latest) return memo.promise;
    const promise = (async () => {
      const key = await ratchetSenderKey(latest, delta);
      const ctx = await SFrameKeyContext.create(key.suite, key.kid, key.baseKey);
      return { key, ctx };
    })();
    if (this._derived.size >= 64) this._derived.clear();
    this._derived.set(kid, { latest, promise });
    return promise;
  }
}
