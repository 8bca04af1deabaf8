// A group meeting's moderation, on the page: the raised-hand queue, the facilitator's
// controls (mute all, talking piece, lock, pause, per-person lower / mute / allow / pass / lobby /
// remove / ban) and what a member sees (muted by a facilitator, ask to speak). The server
// decides everything (docs/protocol.md, "Moderated group meetings"); this only draws the
// `moderation` state it sends and sends requests.

const EVENT_TEXT = {
  hand_raised: (by) => `${by} raised their hand.`,
  asked_to_speak: (by) => `${by} asks to speak.`,
  hands_lowered: () => "A facilitator lowered every hand.",
  piece_on: () => "The talking piece is in use: only the person holding it, and the facilitators, can be heard.",
  piece_off: () => "The talking piece is put away. Everyone can speak.",
  piece_passed: (by, to) => `${to} now holds the talking piece.`,
  piece_returned: (by, to) => `${to || "The holder"} passed the talking piece back.`,
  muted_all: () => "A facilitator muted everyone.",
  locked: () => "A facilitator locked the meeting: no one new can come in.",
  unlocked: () => "The meeting is unlocked.",
  paused: () => "A facilitator paused the meeting. Take a breath; it will resume soon.",
  resumed: () => "The meeting resumes.",
  side_room_opened: (by, to) => `${to} stepped out for a little while.`,
  side_room_returned: (by, to) => `${to} is back with the group.`,
};

/** What a moderation event means for the people here, in words ("" for nothing to say). */
export function describeEvent(event, me, nameOf) {
  if (!event) return { text: "" };
  const by = nameOf(event.by);
  const to = nameOf(event.participant_id);
  const mine = event.participant_id === me;
  if (event.kind === "muted") {
    return mine ? { text: "A facilitator muted you. Others cannot hear you; you can ask to speak.", assertive: true }
      : { text: `${to} was muted by a facilitator.` };
  }
  if (event.kind === "allowed") return mine ? { text: "A facilitator let you speak again.", assertive: true } : { text: "" };
  if (event.kind === "hand_lowered" && event.by !== event.participant_id) {
    return { text: mine ? "A facilitator lowered your hand." : `${to}'s hand was lowered.` };
  }
  if (event.kind === "hand_moved") return { text: `${to} is next to speak.` };
  if (event.kind === "piece_passed" && mine) return { text: "You hold the talking piece. Others can hear you now.", assertive: true };
  if (event.kind === "muted_all") return { text: EVENT_TEXT.muted_all(), assertive: true };
  if (event.kind.startsWith("side_room_") && (mine || event.by === me)) return { text: "" }; // (side-room.js says it)
  const f = EVENT_TEXT[event.kind];
  return { text: f ? f(by, to) : "" };
}

function button(label, onClick, { danger = false, pressed = null, key = "" } = {}) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  if (pressed !== null) b.setAttribute("aria-pressed", String(pressed));
  if (key) b.dataset.key = key;
  b.addEventListener("click", onClick);
  return b;
}

/** Draw the hand queue (everyone sees it; facilitators get lower / first buttons). */
export function renderQueue(list, section, mod, { facilitator, nameOf, send }) {
  const focused = document.activeElement;
  const focusKey = list.contains(focused) ? focused.dataset.key : null;
  list.replaceChildren();
  section.hidden = !mod || mod.queue.length === 0;
  for (const [i, q] of (mod?.queue ?? []).entries()) {
    const li = document.createElement("li");
    li.dataset.participant = q.participant_id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = nameOf(q.participant_id) + (q.asked_to_speak ? " (asks to speak)" : "");
    li.append(name);
    if (facilitator) {
      const box = document.createElement("span");
      box.className = "queue-actions";
      if (i > 0) box.append(button(`Move ${nameOf(q.participant_id)} first`, () => send({ type: "hand_front", participant_id: q.participant_id }), { key: `front:${q.participant_id}` }));
      box.append(button(`Lower ${nameOf(q.participant_id)}'s hand`, () => send({ type: "hand_lower", participant_id: q.participant_id }), { key: `lower:${q.participant_id}` }));
      if (mod.piece_on) box.append(button(`Give ${nameOf(q.participant_id)} the piece`, () => send({ type: "piece_pass", participant_id: q.participant_id }), { key: `pass:${q.participant_id}` }));
      li.append(box);
    }
    list.append(li);
  }
  if (focusKey) list.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/** The facilitator's meeting-wide controls, in the people drawer. */
export function renderFacilitatorControls(box, mod, { send, share }) {
  const focused = document.activeElement;
  const focusKey = box.contains(focused) ? focused.dataset.key : null;
  box.replaceChildren();
  box.append(
    button("Mute all members", () => send({ type: "mute_all" }), { key: "mute-all" }),
    button("Lower all hands", () => send({ type: "hands_lower_all" }), { key: "lower-all" }),
    button(mod.piece_on ? "Talking piece: on" : "Talking piece: off",
      () => send({ type: "piece", on: !mod.piece_on, share_seconds: !mod.piece_on && share() ? share() : null }),
      { pressed: mod.piece_on, key: "piece" }),
  );
  if (mod.piece_on) {
    if (mod.queue.length) box.append(button("Give the piece to the next hand", () => send({ type: "piece_pass" }), { key: "pass-next" }));
    if (mod.holder) box.append(button("Take the piece back", () => send({ type: "piece_return" }), { key: "piece-back" }));
  }
  box.append(button(mod.locked ? "Meeting locked" : "Lock the meeting", () => send({ type: "lock", locked: !mod.locked }),
    { pressed: mod.locked, key: "lock" }));
  box.append(button(mod.paused ? "Resume the meeting" : "Pause the meeting", () => send({ type: "pause", paused: !mod.paused }),
    { pressed: !!mod.paused, key: "pause" }));
  if (focusKey) box.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}

/** Per-person actions for a facilitator (the people list's actionsFor). */
export function facilitatorActions(p, mod, { send, confirm }) {
  if (p.self || !mod || mod.facilitators.includes(p.participant_id)) return [];
  const name = p.display_name;
  const muted = mod.muted.includes(p.participant_id);
  const out = [
    muted ? { id: "allow", label: `Allow ${name} to speak`, run: () => send({ type: "allow", participant_id: p.participant_id }) }
      : { id: "mute", label: `Mute ${name}`, run: () => send({ type: "mute", participant_id: p.participant_id, muted: true }) },
  ];
  if (mod.piece_on && mod.holder !== p.participant_id) {
    out.push({ id: "pass", label: `Give ${name} the piece`, run: () => send({ type: "piece_pass", participant_id: p.participant_id }) });
  }
  out.push(
    { id: "lobby", more: true, label: `Send ${name} to the lobby`,
      run: async () => (await confirm(`Send ${name} back to the lobby? You can let them in again.`, "Send to lobby"))
        && send({ type: "send_to_lobby", participant_id: p.participant_id }) },
    { id: "remove", more: true, label: `Remove ${name}`, danger: true,
      run: async () => (await confirm(`Remove ${name} from this meeting?`, "Remove"))
        && send({ type: "remove", participant_id: p.participant_id }) },
    { id: "ban", more: true, label: `Ban ${name}`, danger: true,
      run: async () => (await confirm(`Ban ${name} from this meeting? None of their links will work again today.`, "Ban from this meeting"))
        && send({ type: "ban", participant_id: p.participant_id, scope: "meeting" }) },
    { id: "ban-group", more: true, label: `Ban ${name} from the group`, danger: true,
      run: async () => (await confirm(`Ban ${name} from the whole group? They will not be able to come back.`, "Ban from the group"))
        && send({ type: "ban", participant_id: p.participant_id, scope: "group" }) },
  );
  return out;
}

/** Why the session ended, for a group meeting's reasons (null: not one of them). */
export function endedText(reason) {
  return {
    removed: "A facilitator removed you from this meeting.",
    banned: "A facilitator removed you from this meeting, and you cannot come back to it.",
    sent_to_lobby: "A facilitator sent you back to the lobby. You can wait there to be let in again.",
    no_facilitator: "No facilitator was here for a while, so the meeting ended. Thank you for coming.",
  }[reason] ?? null;
}
