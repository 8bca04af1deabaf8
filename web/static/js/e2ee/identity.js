// Browser identity keys for Haven E2EE (docs/protocol.md, "Identity keys and the identity card").
//
// An identity is an Ed25519 signing pair and an X25519 agreement pair. The private halves are
// generated as NON-extractable CryptoKeys and kept in IndexedDB (CryptoKey objects are
// structured-cloned, so the key bytes never reach JavaScript). The public half is the card:
//   {v: 1, ed25519: b64u(32), x25519: b64u(32), sig: b64u(64)}
//   sig = Ed25519-Sign(ed25519_private, enc(CARD_LABEL, ed25519_public, x25519_public))

import { b64uDecode, b64uEncode, bytesEqual, canonicalEncode, concatBytes, EncodingError, hexDecode, utf8 } from "./encoding.js";

const subtle = globalThis.crypto.subtle;

export const CARD_LABEL = utf8("haven/e2ee/v1 identity-card");
export const KEYFILE_TYPE = "haven-identity-v1";
const RECORD_KEY = "identity";
const OBJECT_STORE = "keys";

export class KeyExchangeError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}

export class IdentityCardError extends KeyExchangeError {}

export function cardMessage(ed25519Public, x25519Public) {
  return canonicalEncode(CARD_LABEL, ed25519Public, x25519Public);
}

const CARD_FIELDS = ["ed25519", "sig", "v", "x25519"];

function isPlainObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function hasExactly(obj, sortedFields) {
  const keys = Object.keys(obj).sort();
  return keys.length === sortedFields.length && keys.every((k, i) => k === sortedFields[i]);
}

/** Strictly parse a card dict (no signature check): {ed25519, x25519, sig} as bytes. */
export function parseCard(cardDict) {
  if (!isPlainObject(cardDict) || !hasExactly(cardDict, CARD_FIELDS)) {
    throw new IdentityCardError("identity card needs exactly the fields v, ed25519, x25519, sig");
  }
  if (cardDict.v !== 1) throw new IdentityCardError("unsupported identity card version");
  try {
    return {
      ed25519: b64uDecode(cardDict.ed25519, { length: 32, what: "ed25519" }),
      x25519: b64uDecode(cardDict.x25519, { length: 32, what: "x25519" }),
      sig: b64uDecode(cardDict.sig, { length: 64, what: "sig" }),
    };
  } catch (err) {
    if (err instanceof EncodingError) throw new IdentityCardError(err.message);
    throw err;
  }
}

/** Ed25519 verification; false (never a throw) for a bad key or signature. */
export async function ed25519Verify(publicKeyBytes, signature, message) {
  try {
    const key = await subtle.importKey("raw", publicKeyBytes, { name: "Ed25519" }, false, ["verify"]);
    return await subtle.verify({ name: "Ed25519" }, key, signature, message);
  } catch {
    return false;
  }
}

/**
 * Verify a card dict's self-signature before using it at all.
 * Returns {ed25519: Uint8Array(32), x25519: Uint8Array(32)}; throws IdentityCardError.
 */
export async function verifyCard(cardDict) {
  const { ed25519, x25519, sig } = parseCard(cardDict);
  if (!(await ed25519Verify(ed25519, sig, cardMessage(ed25519, x25519)))) {
    throw new IdentityCardError("identity card signature does not verify");
  }
  return { ed25519, x25519 };
}

/** The 64-byte fingerprint ed25519 || x25519 the security code is computed over. */
export function cardFingerprint(cardDict) {
  const { ed25519, x25519 } = parseCard(cardDict);
  return concatBytes(ed25519, x25519);
}

async function makeCard(signKey, ed25519Public, x25519Public) {
  const sig = new Uint8Array(await subtle.sign({ name: "Ed25519" }, signKey, cardMessage(ed25519Public, x25519Public)));
  return { v: 1, ed25519: b64uEncode(ed25519Public), x25519: b64uEncode(x25519Public), sig: b64uEncode(sig) };
}

async function assemble(signKey, agreeKey, ed25519Public, x25519Public) {
  const card = await makeCard(signKey, ed25519Public, x25519Public);
  return Object.freeze({ card: Object.freeze(card), ed25519Public, x25519Public, signKey, agreeKey });
}

/** A new in-memory identity (not stored). Private keys are non-extractable. */
export async function generateIdentity() {
  const ed = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const x = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const edPub = new Uint8Array(await subtle.exportKey("raw", ed.publicKey));
  const xPub = new Uint8Array(await subtle.exportKey("raw", x.publicKey));
  return assemble(ed.privateKey, x.privateKey, edPub, xPub);
}

/** Same signing identity, fresh X25519 pair (recommended once per session). */
export async function withFreshAgreementKey(identity) {
  const x = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  const xPub = new Uint8Array(await subtle.exportKey("raw", x.publicKey));
  return assemble(identity.signKey, x.privateKey, identity.ed25519Public, xPub);
}

const ED25519_PKCS8_PREFIX = hexDecode("302e020100300506032b657004220420");
const X25519_PKCS8_PREFIX = hexDecode("302e020100300506032b656e04220420");

async function importPrivate(prefix, raw, algorithm, usages) {
  if (!(raw instanceof Uint8Array) || raw.length !== 32) throw new KeyExchangeError("private keys are 32 bytes");
  const pkcs8 = concatBytes(prefix, raw);
  // Import once extractable only to learn the public key (JWK "x"), then re-import locked.
  const tmp = await subtle.importKey("pkcs8", pkcs8, { name: algorithm }, true, usages);
  const jwk = await subtle.exportKey("jwk", tmp);
  const key = await subtle.importKey("pkcs8", pkcs8, { name: algorithm }, false, usages);
  pkcs8.fill(0);
  return { key, publicKey: b64uDecode(jwk.x, { length: 32, what: "public key" }) };
}

/**
 * An identity from raw private bytes (Ed25519 32-byte seed, X25519 32-byte scalar), e.g. the
 * documented test vectors or a Python key file. The resulting CryptoKeys are non-extractable.
 */
export async function identityFromPrivateKeys(ed25519Seed, x25519Private) {
  const ed = await importPrivate(ED25519_PKCS8_PREFIX, ed25519Seed, "Ed25519", ["sign"]);
  const x = await importPrivate(X25519_PKCS8_PREFIX, x25519Private, "X25519", ["deriveBits"]);
  return assemble(ed.key, x.key, ed.publicKey, x.publicKey);
}

/** Import a Python `haven-identity-v1` key file dict. */
export async function identityFromKeyFile(data) {
  if (!isPlainObject(data) || data.type !== KEYFILE_TYPE) throw new KeyExchangeError(`not a ${KEYFILE_TYPE} key file`);
  try {
    return await identityFromPrivateKeys(
      b64uDecode(data.ed25519_private, { length: 32, what: "ed25519_private" }),
      b64uDecode(data.x25519_private, { length: 32, what: "x25519_private" }),
    );
  } catch (err) {
    if (err instanceof EncodingError) throw new KeyExchangeError(err.message);
    throw err;
  }
}

// ----------------------------------------------------------------------------- IndexedDB

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb(storeName) {
  const req = indexedDB.open(storeName, 1);
  req.onupgradeneeded = () => {
    if (!req.result.objectStoreNames.contains(OBJECT_STORE)) req.result.createObjectStore(OBJECT_STORE);
  };
  return request(req);
}

async function readRecord(db) {
  const tx = db.transaction(OBJECT_STORE, "readonly");
  return request(tx.objectStore(OBJECT_STORE).get(RECORD_KEY));
}

async function writeRecord(db, record, overwrite) {
  // add() fails with ConstraintError when another tab/caller stored an identity first.
  const tx = db.transaction(OBJECT_STORE, "readwrite");
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(true);
    tx.onabort = () => reject(tx.error);
  });
  const store = tx.objectStore(OBJECT_STORE);
  if (overwrite) store.put(record, RECORD_KEY);
  else store.add(record, RECORD_KEY);
  try {
    return await done;
  } catch (err) {
    if (err && err.name === "ConstraintError") return false;
    throw err;
  }
}

function isCryptoKey(v, type, algorithm) {
  return v instanceof CryptoKey && v.type === type && v.algorithm?.name === algorithm;
}

async function fromRecord(rec) {
  if (
    !isPlainObject(rec) ||
    rec.version !== 1 ||
    !isCryptoKey(rec.signKey, "private", "Ed25519") ||
    !isCryptoKey(rec.agreeKey, "private", "X25519") ||
    !(rec.ed25519Public instanceof Uint8Array) ||
    !(rec.x25519Public instanceof Uint8Array)
  ) {
    return null;
  }
  let ed25519, x25519;
  try {
    ({ ed25519, x25519 } = await verifyCard(rec.card));
  } catch {
    return null;
  }
  if (!bytesEqual(ed25519, rec.ed25519Public) || !bytesEqual(x25519, rec.x25519Public)) return null;
  return Object.freeze({
    card: Object.freeze({ ...rec.card }),
    ed25519Public: ed25519,
    x25519Public: x25519,
    signKey: rec.signKey,
    agreeKey: rec.agreeKey,
  });
}

/**
 * The browser's identity: generated once (non-extractable private keys) and kept in the
 * IndexedDB database `storeName`; later calls and reloads return the same identity.
 * -> {card, ed25519Public, x25519Public, signKey, agreeKey}
 */
export async function loadOrCreateIdentity(storeName = "haven-identity") {
  const db = await openDb(storeName);
  try {
    const rec = await readRecord(db);
    const existing = await fromRecord(rec);
    if (existing) return existing;
    const fresh = await generateIdentity();
    const record = {
      version: 1,
      card: { ...fresh.card },
      ed25519Public: fresh.ed25519Public,
      x25519Public: fresh.x25519Public,
      signKey: fresh.signKey,
      agreeKey: fresh.agreeKey,
    };
    // An unusable stored record (wrong shape, bad card) is replaced; otherwise never overwrite.
    if (await writeRecord(db, record, rec !== undefined)) return fresh;
    const winner = await fromRecord(await readRecord(db));
    if (!winner) throw new KeyExchangeError("stored identity is unreadable");
    return winner;
  } finally {
    db.close();
  }
}

/** Delete the stored identity (e.g. "reset my keys"). */
export async function deleteStoredIdentity(storeName = "haven-identity") {
  const db = await openDb(storeName);
  try {
    const tx = db.transaction(OBJECT_STORE, "readwrite");
    await request(tx.objectStore(OBJECT_STORE).delete(RECORD_KEY));
  } finally {
    db.close();
  }
}
