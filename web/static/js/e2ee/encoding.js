// Byte encodings shared by Haven's browser E2EE modules (docs/protocol.md, "Notation and
// encodings"). Works in pages and workers; no DOM access.
//
// * base64url: RFC 4648 §5 alphabet, no padding; decoding is strict (no padding, no other
//   characters, canonical trailing bits only), exactly like media.e2ee.b64u_decode.
// * canonicalEncode(f1, ..., fn): u32(len) || bytes for each field; strings are UTF-8,
//   integers 0..2^53-1 are written as u64 first, byte strings are used as is.

export class EncodingError extends Error {
  constructor(message) {
    super(message);
    this.name = "EncodingError";
  }
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

export const MAX_SAFE_UINT = Number.MAX_SAFE_INTEGER; // 2^53 - 1

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Return a Uint8Array view of bytes given as Uint8Array, ArrayBuffer or a typed-array view. */
export function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("expected bytes (Uint8Array or ArrayBuffer)");
}

/** base64url without padding. */
export function b64uEncode(bytes) {
  const b = toBytes(bytes);
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = b.length - i;
  if (rest === 1) {
    const n = b[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/**
 * Strict base64url decoding. Throws EncodingError for padding, other characters,
 * an impossible length, non-zero trailing bits, or (with `length`) a wrong size.
 */
export function b64uDecode(text, { length = null, what = "field" } = {}) {
  if (typeof text !== "string" || text.length % 4 === 1) {
    throw new EncodingError(`${what}: not unpadded base64url`);
  }
  const vals = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c] : -1;
    if (v < 0) throw new EncodingError(`${what}: not unpadded base64url`);
    vals[i] = v;
  }
  const full = Math.floor(text.length / 4);
  const rest = text.length % 4; // 0, 2 or 3
  const out = new Uint8Array(full * 3 + (rest ? rest - 1 : 0));
  let o = 0;
  let i = 0;
  for (let g = 0; g < full; g++, i += 4) {
    const n = (vals[i] << 18) | (vals[i + 1] << 12) | (vals[i + 2] << 6) | vals[i + 3];
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  if (rest === 2) {
    if (vals[i + 1] & 15) throw new EncodingError(`${what}: non-canonical base64url`);
    out[o++] = (vals[i] << 2) | (vals[i + 1] >> 4);
  } else if (rest === 3) {
    if (vals[i + 2] & 3) throw new EncodingError(`${what}: non-canonical base64url`);
    const n = (vals[i] << 10) | (vals[i + 1] << 4) | (vals[i + 2] >> 2);
    out[o++] = n >> 8;
    out[o++] = n & 255;
  }
  if (length !== null && out.length !== length) {
    throw new EncodingError(`${what}: expected ${length} bytes, got ${out.length}`);
  }
  return out;
}

export function hexEncode(bytes) {
  const b = toBytes(bytes);
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i].toString(16).padStart(2, "0");
  return s;
}

export function hexDecode(text) {
  if (typeof text !== "string" || text.length % 2 || /[^0-9a-fA-F]/.test(text)) {
    throw new EncodingError("not a hex string");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

export function concatBytes(...parts) {
  let total = 0;
  const views = parts.map((p) => toBytes(p));
  for (const v of views) total += v.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const v of views) {
    out.set(v, pos);
    pos += v.length;
  }
  return out;
}

export function bytesEqual(a, b) {
  a = toBytes(a);
  b = toBytes(b);
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Bytewise lexicographic comparison (like Python's bytes ordering). */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function isAllZero(bytes) {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i];
  return acc === 0;
}

export function u32(n) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, false);
  return out;
}

/** 8-byte big-endian encoding of a non-negative integer (number <= 2^53-1 or BigInt < 2^64). */
export function u64(n) {
  const big = BigInt(n);
  if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError("u64 out of range");
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, big, false);
  return out;
}

/** True if `value` is a JS integer (not a boolean) in 0..max. */
export function isUint(value, max) {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

export function utf8(text) {
  return utf8Encoder.encode(text);
}

export function utf8Decode(bytes) {
  return utf8Decoder.decode(toBytes(bytes));
}

/** A room / participant id: a well-formed string of 1..256 bytes of UTF-8. */
export function checkId(name, value) {
  if (typeof value !== "string" || value.length === 0) {
    throw new EncodingError(`${name} must be a non-empty string`);
  }
  if (!value.isWellFormed()) throw new EncodingError(`${name} is not valid Unicode text`);
  if (utf8Encoder.encode(value).length > 256) {
    throw new EncodingError(`${name} is longer than 256 bytes`);
  }
}

/**
 * Canonical encoding (docs/protocol.md): for each field u32(len(bytes)) || bytes.
 * Fields: Uint8Array/ArrayBuffer (as is), string (UTF-8, must be well-formed),
 * integer number 0..2^53-1 (as u64). Booleans and anything else throw TypeError.
 */
export function canonicalEncode(...fields) {
  const parts = [];
  for (const value of fields) {
    let data;
    if (typeof value === "number") {
      if (!Number.isInteger(value) || value < 0 || value > MAX_SAFE_UINT) {
        throw new RangeError("integer fields must be in 0..2^53-1");
      }
      data = u64(value);
    } else if (typeof value === "string") {
      if (!value.isWellFormed()) throw new TypeError("text fields must be valid Unicode");
      data = utf8Encoder.encode(value);
    } else if (value instanceof Uint8Array || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      data = toBytes(value);
    } else {
      throw new TypeError(`cannot encode ${value === null ? "null" : typeof value}`);
    }
    parts.push(u32(data.length), data);
  }
  return concatBytes(...parts);
}

/** An exact copy in a fresh ArrayBuffer (for WebCrypto inputs and postMessage). */
export function copyBytes(bytes) {
  return new Uint8Array(toBytes(bytes));
}
