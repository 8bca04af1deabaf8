// Sender-key lifecycle for one client in one room; the browser twin of
// media.e2ee.SenderKeyManager (docs/protocol.md, "Key lifecycle"). No I/O: every method
// that changes keys returns the wrapped-key dicts to send (each has a "to" field; the page
// sends {type: "keys", keys: [{to: blob.to, blob}]}).
//
// * start(members): our fresh key (generation 0, step 0) for everyone already present.
// * memberJoined(m): ratchet our key one step, use it at once, wrap it for the newcomer only
//   (for everyone when the step reaches a multiple of 16).
// * memberLeft(pid): forget their keys, new random base key (generation + 1), wrap it for the
//   remaining members only.
// * setAudience(pids | null): who of the members hears us now (a group meeting's side room:
//   the other side; the group: everyone not stepped out; null: everyone). Whoever is no
//   longer in it is handled like a leave (their keys forgotten, a new generation for the new
//   audience), whoever is back like a join (a ratchet step, wrapped for them).
// * accept(blob): verify + unwrap a blob addressed to us, using the ROSTER's card and sender id.
//
// Callbacks the page may set (called synchronously inside the methods above):
//   onSendKey(senderKey)                 our send key changed (start, ratchet, new generation)
//   onReceiveKey(senderKey, participantId) a newer key of another member was accepted
//   onRemoveSender(senderId, participantId) a member left: forget their keys now
//
// Calls are serialized internally, so overlapping joins/leaves/accepts keep a consistent state.

import { checkId, EncodingError, isUint } from "./encoding.js";
import { KeyExchangeError, verifyCard } from "./identity.js";
import { securityCode, unwrapSenderKey, wrapSenderKey } from "./keyexchange.js";
import { AES_128_GCM_SHA256_128, generateSenderKey, getCipherSuite, MAX_SENDER_ID, ratchetSenderKey } from "./sframe.js";

function isNewer(a, b) {
  return a.generation > b.generation || (a.generation === b.generation && a.ratchetStep > b.ratchetStep);
}

function sameCard(a, b) {
  return a.v === b.v && a.ed25519 === b.ed25519 && a.x25519 === b.x25519 && a.sig === b.sig;
}

/** Parse + verify a roster entry {participant_id, sender_id, identity: cardDict}. */
async function parseMember(member) {
  if (member === null || typeof member !== "object") throw new KeyExchangeError("member must be an object");
  const participantId = member.participant_id;
  const senderId = member.sender_id;
  const card = member.identity ?? member.card;
  try {
    checkId("participant_id", participantId);
  } catch (err) {
    if (err instanceof EncodingError) throw new KeyExchangeError(err.message);
    throw err;
  }
  if (!isUint(senderId, MAX_SENDER_ID)) throw new KeyExchangeError(`sender_id must be an integer in 0..${MAX_SENDER_ID}`);
  const { ed25519, x25519 } = await verifyCard(card);
  return Object.freeze({ participantId, senderId, card: Object.freeze({ ...card }), ed25519, x25519 });
}

export class SenderKeyManager {
  constructor(roomId, identity, participantId, senderId, { suite = AES_128_GCM_SHA256_128, maxRatchetAhead = 16 } = {}) {
    try {
      checkId("room_id", roomId);
      checkId("participant_id", participantId);
    } catch (err) {
      throw new KeyExchangeError(err.message);
    }
    if (!isUint(senderId, MAX_SENDER_ID)) throw new KeyExchangeError(`sender_id must be an integer in 0..${MAX_SENDER_ID}`);
    if (!identity || !identity.card || !identity.signKey || !identity.agreeKey) throw new KeyExchangeError("identity is incomplete");
    this.roomId = roomId;
    this.identity = identity;
    this.participantId = participantId;
    this.senderId = senderId;
    this.suite = getCipherSuite(suite).id;
    this.maxRatchetAhead = maxRatchetAhead;
    this._sendKey = generateSenderKey(senderId, 0, this.suite);
    this._members = new Map(); // participant id -> member
    this._audience = null; // Set of participant ids our key goes to; null: every member
    this._received = new Map(); // participant id -> newest SenderKey accepted
    this._queue = Promise.resolve();
    this.rejectedMembers = []; // [{member, error}] skipped by start()
    this.onSendKey = null;
    this.onReceiveKey = null;
    this.onRemoveSender = null;
  }

  /** Our current SenderKey {senderId, generation, ratchetStep, baseKey, kid, suite}. */
  get sendKey() {
    return this._sendKey;
  }

  /** Current roster (without ourselves): [{participantId, senderId, card, ed25519, x25519}]. */
  get members() {
    return [...this._members.values()];
  }

  /** The members our key is given to now (see setAudience). */
  get audience() {
    const all = [...this._members.values()];
    return this._audience === null ? all : all.filter((m) => this._audience.has(m.participantId));
  }

  _serial(fn) {
    const run = this._queue.then(fn, fn);
    this._queue = run.catch(() => {});
    return run;
  }

  _emit(name, ...args) {
    const cb = this[name];
    if (typeof cb !== "function") return;
    try {
      cb(...args);
    } catch (err) {
      console.error(`SenderKeyManager.${name} failed`, err);
    }
  }

  _check(m) {
    if (m.participantId === this.participantId) throw new KeyExchangeError("cannot add ourselves as a member");
    if (m.senderId === this.senderId) throw new KeyExchangeError(`SFrame sender id ${m.senderId} is already in use`);
    for (const other of this._members.values()) {
      if (other.senderId === m.senderId && other.participantId !== m.participantId) {
        throw new KeyExchangeError(`SFrame sender id ${m.senderId} is already in use`);
      }
    }
    if (this._members.has(m.participantId)) throw new KeyExchangeError(`participant ${m.participantId} is already a member`);
  }

  async _wrapFor(members) {
    const key = this._sendKey;
    return Promise.all(
      members.map((m) =>
        wrapSenderKey(key, { roomId: this.roomId, identity: this.identity, senderParticipantId: this.participantId, recipient: m }),
      ),
    );
  }

  /**
   * Record the members already in the room and give each our key. Members whose card does
   * not verify or whose ids clash are skipped (listed in this.rejectedMembers).
   * -> [wrapped-key dict]
   */
  start(members) {
    return this._serial(async () => {
      const added = [];
      for (const raw of members ?? []) {
        if (raw && raw.participant_id === this.participantId) continue;
        try {
          const m = await parseMember(raw);
          this._check(m);
          this._members.set(m.participantId, m);
          added.push(m);
        } catch (err) {
          if (!(err instanceof KeyExchangeError)) throw err;
          this.rejectedMembers.push({ member: raw, error: err });
        }
      }
      this._emit("onSendKey", this._sendKey);
      return this._wrapFor(added);
    });
  }

  /** A member joined: ratchet, switch at once, wrap for the newcomer (or all every 16 steps). */
  memberJoined(member) {
    return this._serial(async () => {
      const m = await parseMember(member);
      const known = this._members.get(m.participantId);
      if (known && known.senderId === m.senderId && sameCard(known.card, m.card)) return []; // duplicate
      this._check(m);
      if (this._audience !== null) {
        this._members.set(m.participantId, m);
        return []; // not ours to key until setAudience says they hear us
      }
      const next = await ratchetSenderKey(this._sendKey);
      this._members.set(m.participantId, m);
      this._sendKey = next;
      this._emit("onSendKey", next);
      if (next.ratchetStep % Math.max(this.maxRatchetAhead, 1) === 0) return this._wrapFor([...this._members.values()]);
      return this._wrapFor([m]);
    });
  }

  /** A member left or was removed: forget their keys, new generation for the rest. */
  memberLeft(participantId) {
    return this._serial(async () => {
      const m = this._members.get(participantId);
      if (!m) return [];
      const heard = this.audience.includes(m);
      this._members.delete(participantId);
      this._received.delete(participantId);
      this._emit("onRemoveSender", m.senderId, participantId);
      if (this._audience !== null) {
        this._audience.delete(participantId);
        if (!heard) return []; // elsewhere (a side room): they do not hold our current key
      }
      this._sendKey = generateSenderKey(this.senderId, this._sendKey.generation + 1, this.suite);
      this._emit("onSendKey", this._sendKey);
      return this._wrapFor(this.audience);
    });
  }

  /** Give our key only to these members from now on (unknown ids ignored). -> [wrapped-key dict] */
  setAudience(participantIds) {
    return this._serial(async () => {
      const old = new Set(this.audience.map((m) => m.participantId));
      const next =
        participantIds === null || participantIds === undefined
          ? new Set(this._members.keys())
          : new Set([...participantIds].filter((pid) => this._members.has(pid)));
      this._audience = participantIds === null || participantIds === undefined ? null : next;
      const gone = [...old].filter((pid) => !next.has(pid));
      const back = [...next].filter((pid) => !old.has(pid));
      for (const pid of gone) {
        // we hold none of their keys while they are elsewhere
        this._received.delete(pid);
        this._emit("onRemoveSender", this._members.get(pid).senderId, pid);
      }
      if (gone.length) {
        this._sendKey = generateSenderKey(this.senderId, this._sendKey.generation + 1, this.suite);
        this._emit("onSendKey", this._sendKey);
        return this._wrapFor(this.audience);
      }
      if (back.length) {
        this._sendKey = await ratchetSenderKey(this._sendKey);
        this._emit("onSendKey", this._sendKey);
        if (this._sendKey.ratchetStep % Math.max(this.maxRatchetAhead, 1) === 0) return this._wrapFor(this.audience);
        return this._wrapFor(this.audience.filter((m) => back.includes(m.participantId)));
      }
      return [];
    });
  }

  /**
   * Verify and unwrap a blob addressed to us. -> SenderKey. onReceiveKey is called when the
   * key is newer than the one held for that member (older keys are returned but ignored).
   */
  accept(blobDict) {
    return this._serial(async () => {
      const from = blobDict && typeof blobDict === "object" ? blobDict.from : undefined;
      const sender = typeof from === "string" ? this._members.get(from) : undefined;
      if (!sender) throw new KeyExchangeError(`wrapped key from unknown participant ${from}`);
      const key = await unwrapSenderKey(blobDict, {
        roomId: this.roomId,
        identity: this.identity,
        recipientParticipantId: this.participantId,
        sender,
      });
      if (key.suite !== this.suite) throw new KeyExchangeError("key cipher suite differs from ours");
      if (this._members.get(sender.participantId) !== sender) throw new KeyExchangeError("sender left meanwhile");
      const held = this._received.get(sender.participantId);
      if (!held || isNewer(key, held)) {
        this._received.set(sender.participantId, key);
        this._emit("onReceiveKey", key, sender.participantId);
      }
      return key;
    });
  }

  /** The security code over the room id, our card and every member's card. */
  async securityCode(digits = 15) {
    const cards = [this.identity.card, ...[...this._members.values()].map((m) => m.card)];
    return securityCode(this.roomId, cards, { digits });
  }
}
