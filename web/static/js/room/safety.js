// Safety in the room (docs/protocol.md, "Safety in the room"):
// * a member's (or patient's) "Let the facilitator know I'm struggling", sent from the Get
//   help now dialog as a `help_alert` signaling message, and the server's answer in the dialog;
// * the facilitator's private panel: each `safety_alert` as a calm entry (announced through a
//   role=alert region), with "Mark followed up" (the safety API's status update), "More for
//   <name>" (that person's controls in the people drawer) and any further actions other room
//   modules register (RoomSafety.actions: the side room plugs in there);
// * "Flag a concern about <name>" in a facilitator's per-person controls (`concern_flag`);
// * the notes indicator every member sees (`notes_state`), in a polite live region.
// The server decides who may do what; this draws what it sends.

import { roomAlertResult, setRoomAlert } from "../help-now.js";

const ALERT_ERRORS = new Set(["alert_too_soon", "message_too_long", "not_in_meeting", "no_therapist",
  "alerts_unavailable"]);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

function timeOf(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function csrf() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

export class RoomSafety {
  /**
   * Further actions on an alert entry, for other room modules: {id, label, run(alert)}.
   * The private side room (a facilitator invites the member) registers itself here.
   */
  static actions = [];

  /**
   * @param {object} hooks
   *   send(msg) -> boolean (false: not connected); openPerson(participantId);
   *   context() -> {group, facilitator, roomRole}
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.alerts = new Map(); // alert id -> the latest safety_alert
    this.sentAlert = false; // an alert waits for the server's answer
    this.panel = document.getElementById("safety-panel");
    this.list = document.getElementById("safety-list");
    this.live = document.getElementById("safety-live");
    this.notes = document.getElementById("notes-indicator");
    this.notesText = document.getElementById("notes-indicator-text");
    this.concern = document.getElementById("concern-dialog");
    this.concern?.addEventListener("close", () => this.#concernClosed());
    this.history = []; // what the panel showed, for tests and diagnostics
  }

  /** The room's roles are known (or changed): who the dialog can tell. */
  update() {
    const { group, facilitator, roomRole } = this.hooks.context();
    // (outside a group meeting: a patient's 1:1 session; an instant room's guest has nobody to tell)
    const patient = document.getElementById("session")?.dataset.accountRole === "patient";
    const who = group ? (facilitator ? null : "facilitator") : roomRole === "member" && patient ? "therapist" : null;
    setRoomAlert(who ? { who, send: (message) => this.#sendAlert(message) } : null);
    if (this.notes) this.notes.hidden = !group || !this.notesState;
  }

  leave() {
    setRoomAlert(null);
  }

  /** A server message; true if it was one of ours. */
  handle(msg) {
    switch (msg.type) {
      case "help_alert_sent":
        this.sentAlert = false;
        roomAlertResult({ ok: true, text: msg.message });
        return true;
      case "safety_alert":
        this.#show(msg);
        return true;
      case "notes_state":
        this.#notes(msg.state);
        return true;
      case "error":
        if (!msg.fatal && this.sentAlert && ALERT_ERRORS.has(msg.code)) {
          this.sentAlert = false;
          const text = msg.message.charAt(0).toUpperCase() + msg.message.slice(1) + ".";
          roomAlertResult({ ok: false, text: msg.code === "alert_too_soon" ? text + " The facilitators already have your first message." : text });
          return true;
        }
        return false;
      default:
        return false;
    }
  }

  /** Per-person controls for a facilitator (added to the people list's "More for …"). */
  personActions(p) {
    const { group, facilitator } = this.hooks.context();
    if (!group || !facilitator || p.self) return [];
    return [{ id: "concern", more: true, label: `Flag a concern about ${p.display_name}`,
      run: () => this.#askConcern(p) }];
  }

  // --- a member's alert ---------------------------------------------------------------------

  #sendAlert(message) {
    this.sentAlert = true;
    const ok = this.hooks.send({ type: "help_alert", message });
    if (!ok) this.sentAlert = false;
    return ok;
  }

  // --- the facilitator's panel --------------------------------------------------------------

  #show(alert) {
    const known = this.alerts.has(alert.alert_id);
    this.alerts.set(alert.alert_id, alert);
    this.#render();
    if (!known) {
      const text = alert.kind === "concern"
        ? `${alert.raised_by || "A facilitator"} flagged a concern about ${alert.pseudonym}.`
        : alert.live ? `${alert.pseudonym} let you know they are struggling.`
          : `Earlier in this meeting, ${alert.pseudonym} let the facilitators know they are struggling.`;
      this.history.push({ id: alert.alert_id, text, at: Date.now() });
      this.live.textContent = "";
      setTimeout(() => { this.live.textContent = text; }, 50);
    }
  }

  #render() {
    const focused = document.activeElement;
    const focusKey = this.list.contains(focused) ? focused.dataset.key : null;
    this.list.replaceChildren();
    const open = [...this.alerts.values()].filter((a) => !a.followed).reverse();
    for (const a of [...this.alerts.values()].reverse()) {
      const li = el("li", { className: `safety-entry ${a.kind}${a.followed ? " followed" : ""}` });
      li.dataset.alertId = String(a.alert_id);
      const who = el("strong", { className: "safety-who", textContent: a.pseudonym });
      const what = a.kind === "concern" ? ` · concern flagged by ${a.raised_by || "a facilitator"}`
        : a.live ? " asked for help" : " asked for help earlier";
      li.append(el("p", { className: "safety-head" }, who, what,
        el("span", { className: "safety-time", textContent: ` · ${timeOf(a.created_at)}` })));
      if (a.message) li.append(el("blockquote", { className: "safety-message", textContent: a.message }));
      else if (a.kind === "alert" && !a.live && a.group_id) {
        li.append(el("p", { className: "help" }, "Their words are on the ",
          el("a", { href: `/groups/${a.group_id}/safety`, target: "_blank", rel: "noopener", textContent: "group's safety page" }), "."));
      }
      if (a.followed) {
        li.append(el("p", { className: "help safety-done", textContent: "Followed up." }));
      } else {
        li.append(el("p", { className: "help safety-next", textContent: a.participant_id
          ? "Next: check in with them, by name or in a quiet moment. Their controls are under More."
          : "They are not in the room now. Follow up from the group's safety page." }));
        const box = el("div", { className: "safety-actions" });
        const button = (id, label, run, cls = "") => {
          const b = el("button", { type: "button", textContent: label, className: cls });
          b.dataset.key = `${id}:${a.alert_id}`;
          b.addEventListener("click", () => run(a, b));
          box.append(b);
        };
        button("followed", "Mark followed up", (x, b) => this.#followUp(x, b), "primary");
        if (a.participant_id) button("more", `More for ${a.pseudonym}`, (x) => this.hooks.openPerson(x.participant_id));
        for (const extra of RoomSafety.actions) {
          if (!extra.applies || extra.applies(a)) button(extra.id, extra.label(a), extra.run);
        }
        li.append(box, el("p", { className: "safety-error", role: "status" }));
      }
      this.list.append(li);
    }
    this.panel.hidden = this.alerts.size === 0;
    document.getElementById("safety-count").textContent = open.length ? `(${open.length})` : "";
    if (focusKey) this.list.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
  }

  async #followUp(alert, button) {
    const url = alert.group_id ? `/api/groups/${alert.group_id}/safety/alerts/${alert.alert_id}`
      : `/api/practice/safety-alerts/${alert.alert_id}`;
    button.disabled = true;
    const error = button.closest("li").querySelector(".safety-error");
    let res = null;
    try {
      res = await fetch(url, { method: "PATCH", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify({ status: "handled" }) });
    } catch { res = null; }
    if (res && res.ok) {
      alert.followed = true;
      this.#render();
      return;
    }
    button.disabled = false;
    error.textContent = res && res.status === 401
      ? "Log in to Haven in this browser to mark it, or use the group's safety page."
      : "Could not save that just now. Try again, or use the group's safety page.";
  }

  // --- a facilitator's concern ------------------------------------------------------------

  #askConcern(p) {
    if (!this.concern) return;
    this.concernFor = p;
    document.getElementById("concern-title").textContent = `Flag a concern about ${p.display_name}`;
    document.getElementById("concern-note").value = "";
    this.concern.showModal();
  }

  #concernClosed() {
    const p = this.concernFor;
    this.concernFor = null;
    if (!p || this.concern.returnValue !== "flag") return;
    const note = document.getElementById("concern-note").value.trim();
    this.hooks.send({ type: "concern_flag", participant_id: p.participant_id, note: note || null });
  }

  // --- the notes indicator ----------------------------------------------------------------

  #notes(state) {
    const first = !this.notesState;
    this.notesState = state;
    const on = state === "on";
    this.notes.dataset.state = state;
    this.notes.hidden = false;
    const text = on ? "Notes are being taken" : "No notes are being taken";
    if (first) {
      this.notesText.textContent = text; // (no announcement on arrival: it is on screen)
    } else if (this.notesText.textContent !== text) {
      this.notesText.textContent = text; // a polite live region: a screen reader hears it
    }
  }
}
