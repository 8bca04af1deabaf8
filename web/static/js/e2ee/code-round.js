// The commit-then-reveal round behind the security code; mirrors media/code_round.py.
// One round per membership epoch (docs/protocol.md, "The security-code round"):
//   1. send code_commit {epoch, commitment(room, my card, r)} with a fresh random r;
//   2. once every member's commitment is in, send code_reveal {epoch, contribution: r};
//   3. check each reveal against its commitment; when all are in, the code mixes in every r.
// The server, relaying all of it, must fix any substituted keys before the code's inputs
// exist, so it cannot grind keys until two sides' codes match.

import { b64uDecode, b64uEncode, bytesEqual } from "./encoding.js";
import { commitment, securityCode } from "./keyexchange.js";

export class CodeRoundError extends Error {}

export class SecurityCodeRound {
  /**
   * @param {string} roomId
   * @param {number} epoch
   * @param {string} ownId      our participant id
   * @param {object} ownCard    our identity card (dict)
   * @param {Map<string, object>|object} members  other participant id -> identity card
   */
  constructor(roomId, epoch, ownId, ownCard, members, { digits = 15 } = {}) {
    this.roomId = roomId;
    this.epoch = epoch;
    this.ownId = ownId;
    this.digits = digits;
    this.cards = new Map([[ownId, ownCard], ...(members instanceof Map ? members : Object.entries(members))]);
    this.mine = crypto.getRandomValues(new Uint8Array(32));
    this.commitments = new Map();
    this.contributions = new Map();
    this.revealed = false;
    this.failedBy = null;
  }

  /** Our commitment (base64url); call once, first. */
  async commitMessage() {
    const c = await commitment(this.roomId, this.cards.get(this.ownId), this.mine);
    this.commitments.set(this.ownId, c);
    return b64uEncode(c);
  }

  get readyToReveal() {
    if (this.revealed) return false;
    for (const id of this.cards.keys()) if (!this.commitments.has(id)) return false;
    return true;
  }

  revealMessage() {
    if (!this.readyToReveal) throw new CodeRoundError("cannot reveal before every commitment is in");
    this.revealed = true;
    this.contributions.set(this.ownId, this.mine);
    return b64uEncode(this.mine);
  }

  onCommit(participantId, value) {
    if (!this.cards.has(participantId) || participantId === this.ownId) return;
    if (this.commitments.has(participantId)) return; // the first commitment counts
    this.commitments.set(participantId, b64uDecode(value, { length: 32, what: "commitment" }));
  }

  async onReveal(participantId, value) {
    if (!this.cards.has(participantId) || participantId === this.ownId) return;
    const contribution = b64uDecode(value, { length: 32, what: "contribution" });
    const expected = this.commitments.get(participantId);
    const actual = await commitment(this.roomId, this.cards.get(participantId), contribution);
    if (!expected || !bytesEqual(expected, actual)) {
      this.failedBy = participantId;
      throw new CodeRoundError(`${participantId} revealed a value it had not committed to`);
    }
    this.contributions.set(participantId, contribution);
  }

  /** The code once every member has revealed, else null. */
  async code() {
    if (this.failedBy) return null;
    for (const id of this.cards.keys()) if (!this.contributions.has(id)) return null;
    return securityCode(this.roomId, [...this.cards.values()], {
      digits: this.digits, contributions: [...this.contributions.values()],
    });
  }
}
