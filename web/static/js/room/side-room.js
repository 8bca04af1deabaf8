// A group meeting's private side room (docs/protocol.md, "Side rooms"): a facilitator invites
// one member; the member gets a calm accept/decline prompt; while the two are in the side
// room both see who they are with and "Return to the group", and everyone's seat for them
// says "stepped out" (no reason). The server decides and enforces everything (the SFU
// forwards nothing between the side room and the group); this draws its `side_room` messages
// and the `moderation` state, and sends requests.
//
// Keys: audienceIn(state, me, members) says who hears us now; the page gives it to
// SenderKeyManager.setAudience on every `moderation` state, so the side room has its own keys.

/** Who hears us in this `moderation` state: our side room's other side, or (in the group)
 * everyone not stepped out. */
export function audienceIn(state, me, memberIds) {
  for (const side of state?.side_rooms ?? []) {
    if (side.facilitator === me) return [side.member];
    if (side.member === me) return [side.facilitator];
  }
  const away = new Set(state?.stepped_out ?? []);
  return [...memberIds].filter((pid) => !away.has(pid));
}

export function steppedOut(state, pid) {
  return !!state?.stepped_out?.includes(pid);
}

/** The side room I am in (open), as {room, facilitator, member}, or null. */
export function mySideRoom(state, me) {
  return (state?.side_rooms ?? []).find((s) => s.facilitator === me || s.member === me) ?? null;
}

export class SideRoomView {
  /**
   * @param {object} els  {invite, inviteText, accept, decline, panel, panelText, back,
   *                       pending, pendingText, withdraw}
   * @param {object} hooks {send(msg), say(text, {assertive}), nameOf(pid), me() -> pid}
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.invitation = null; // a `side_room` message: invited (to me, or sent by me)
    this.returnFocus = null;
    els.accept.addEventListener("click", () => this._answer("side_room_accept"));
    els.decline.addEventListener("click", () => this._answer("side_room_decline"));
    els.back.addEventListener("click", () => hooks.send({ type: "side_room_return" }));
    els.withdraw.addEventListener("click", () => hooks.send({ type: "side_room_return" }));
    els.invite.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this._answer("side_room_decline");
      }
    });
  }

  /** Per-person action for a facilitator (merged into the people list's actions). */
  actionsFor(p, mod, amFacilitator) {
    const me = this.hooks.me();
    if (!amFacilitator || p.self || !mod || mod.facilitators.includes(p.participant_id)) return [];
    if (steppedOut(mod, p.participant_id) || steppedOut(mod, me)) return [];
    if (this.invitation && this.invitation.facilitator === me) return [];
    // another facilitator must stay with the group (the server refuses otherwise)
    if (!mod.facilitators.some((f) => f !== me && !steppedOut(mod, f))) return [];
    return [{ id: "side-room", label: `Invite ${p.display_name} to a side room`,
      run: () => this.hooks.send({ type: "side_room_invite", participant_id: p.participant_id }) }];
  }

  _answer(type) {
    this.hooks.send({ type });
    this._hideInvite();
  }

  _hideInvite() {
    if (this.els.invite.hidden) return;
    this.els.invite.hidden = true;
    const back = this.returnFocus;
    this.returnFocus = null;
    if (back && document.contains(back)) back.focus({ preventScroll: true });
  }

  /** A `side_room` message (only the two sides get these). */
  handle(msg) {
    const me = this.hooks.me();
    const iAmMember = msg.member === me;
    const other = iAmMember ? (msg.facilitator_name || this.hooks.nameOf(msg.facilitator))
      : (msg.member_name || this.hooks.nameOf(msg.member));
    const { say } = this.hooks;
    if (msg.status === "invited") {
      this.invitation = msg;
      if (iAmMember) {
        this.els.inviteText.textContent = `${other} invites you to a private side room, just the two of you. `
          + "The group will not hear you there, and you can come back whenever you like.";
        this.returnFocus = document.activeElement;
        this.els.invite.hidden = false;
        // (an alertdialog taking the focus: screen readers read its title and text; no toast
        // on top of it saying the same)
        this.els.accept.focus({ preventScroll: true });
      } else {
        this.els.pendingText.textContent = `Waiting for ${other} to answer your side-room invitation.`;
        this.els.pending.hidden = false;
        say(`You invited ${other} to a side room.`);
      }
      return;
    }
    this.invitation = null;
    this.els.pending.hidden = true;
    this._hideInvite();
    if (msg.status === "declined") say(`${other} would rather stay with the group.`);
    else if (msg.status === "withdrawn") say(iAmMember ? "The side-room invitation was withdrawn." : "Invitation withdrawn.");
    else if (msg.status === "opened") say(`You are in a side room with ${other}. The group cannot hear you.`, { assertive: true });
    else if (msg.status === "returned") say("You are back with the group.", { assertive: true });
  }

  /** Draw the side-room panel from the `moderation` state. */
  render(mod) {
    const me = this.hooks.me();
    const side = mySideRoom(mod, me);
    const wasOpen = !this.els.panel.hidden;
    this.els.panel.hidden = !side;
    if (side) {
      const other = side.facilitator === me ? side.member : side.facilitator;
      this.els.panelText.textContent = `You are with ${this.hooks.nameOf(other)}. Only the two of you can hear each other; the group carries on.`;
      if (!wasOpen) this.els.back.focus({ preventScroll: true });
    }
  }
}
