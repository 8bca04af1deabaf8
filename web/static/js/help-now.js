// "Get help now": every page's header link (and the room's corner) opens a dialog listing
// crisis lines for the person's country. The data is inlined in the page
// (<script type="application/json" id="crisis-data">), so the dialog works offline once the
// page is loaded, and without the 3D scene. Without JavaScript the link opens /help.
//
// The country: the account's setting (GET /api/me/safety, remembered in localStorage for
// offline use), else the browser's languages (navigator.languages), else the picker.

const dataEl = document.getElementById("crisis-data");
const dialog = document.getElementById("help-dialog");
const STORE_KEY = "haven.helpCountry";
const LANG_COUNTRY = { de: "DE", fr: "FR", nl: "NL", es: "ES", it: "IT", pt: "PT", sv: "SE",
  nb: "NO", nn: "NO", no: "NO", da: "DK", fi: "FI", pl: "PL", ja: "JP", ko: "KR", hi: "IN" };

let directory = null;
try {
  directory = dataEl ? JSON.parse(dataEl.textContent).countries : null;
} catch {
  directory = null;
}

const remembered = () => {
  try { return localStorage.getItem(STORE_KEY) || null; } catch { return null; }
};
const remember = (code) => {
  try {
    if (code) localStorage.setItem(STORE_KEY, code); else localStorage.removeItem(STORE_KEY);
  } catch { /* private mode: fine */ }
};

export function countryFromLocales(locales, known) {
  for (const tag of locales || []) {
    const parts = String(tag).split(/[-_]/);
    const region = parts.slice(1).find((p) => /^[A-Za-z]{2}$/.test(p));
    if (region && known[region.toUpperCase()]) return region.toUpperCase();
    const byLang = LANG_COUNTRY[(parts[0] || "").toLowerCase()];
    if (!region && byLang && known[byLang]) return byLang;
  }
  return null;
}

// The account's country, fetched once per page while online.
const loggedIn = !!document.querySelector('form[action="/logout"]') ||
  document.body.dataset.loggedIn === "1" || !!document.querySelector("[data-logged-in='1']");
let accountCountry = loggedIn ? fetch("/api/me/safety", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : null))
  .then((body) => {
    const code = body && body.country;
    remember(code || null);
    return code || null;
  })
  .catch(() => remembered()) : Promise.resolve(null);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function link(href, text, external) {
  const a = el("a", { href, textContent: text });
  if (external) { a.rel = "noopener"; a.target = "_blank"; }
  return a;
}

function render(code) {
  const country = directory[code];
  const list = document.getElementById("help-lines");
  const emergency = document.getElementById("help-emergency");
  const picker = document.getElementById("help-country");
  list.replaceChildren();
  if (!country) {
    emergency.textContent = "Choose your country to see its crisis lines.";
    return;
  }
  picker.value = code;
  emergency.replaceChildren(`Emergency in ${country.name}: `,
    link(`tel:${country.emergency_tel}`, country.emergency),
    country.emergency_note ? ` (${country.emergency_note})` : "");
  for (const line of country.lines) {
    const extra = [line.hours, line.text].filter(Boolean).join(" · ");
    const how = line.sms_only ? "Text " : "Call ";
    list.append(el("li", { className: "help-line" },
      el("strong", { textContent: line.name }),
      el("span", { className: "help-number" }, how,
        link(`${line.sms_only ? "sms" : "tel"}:${line.tel}`, line.number)),
      el("span", { textContent: line.description }),
      el("span", { className: "help" }, extra,
        line.chat ? " · " : "", line.chat ? link(line.chat, "Chat online", true) : null),
      el("span", { className: "help source" }, "Source: ", link(line.source, line.source, true))));
  }
}

async function chooseCountry() {
  let code = null;
  try {
    code = await Promise.race([accountCountry,
      new Promise((resolve) => setTimeout(() => resolve(remembered()), 1500))]);
  } catch { code = remembered(); }
  if (!code || !directory[code]) code = countryFromLocales(navigator.languages || [navigator.language], directory);
  return code;
}

// --- in a room: "Let the facilitator know I'm struggling" without leaving ------------------
// The room (room/safety.js) registers how to send it (a `help_alert` signaling message) and
// reports the server's answer; outside a room the row is a link to /help#tell.

let roomAlert = null; // {who: "facilitator" | "therapist", send(message)} while in a room
let inRoom = false; // a room page: never a link out of it (facilitators have nobody to tell here)

const TELL_TEXT = {
  facilitator: ["Let the facilitator know you're struggling",
    "Only the facilitators see this, with your group name. Nobody else in the group is told.",
    "Let the facilitator know I'm struggling"],
  therapist: ["Let your therapist know you're struggling",
    "Only your therapist sees this.", "Let my therapist know I'm struggling"],
};

/** The room's hook: null when the room has nobody to tell (then the /help link shows). */
export function setRoomAlert(hook) {
  roomAlert = hook;
  inRoom = true;
  const tell = document.getElementById("help-tell");
  if (!tell) return;
  tell.hidden = !hook;
  const row = document.getElementById("help-alert-row");
  if (row && hook) row.hidden = true;
  if (hook) {
    const [title, intro, button] = TELL_TEXT[hook.who] || TELL_TEXT.facilitator;
    document.getElementById("help-tell-h").textContent = title;
    document.getElementById("help-tell-intro").textContent = intro;
    document.getElementById("help-tell-send").textContent = button;
  }
}

/** The server's answer to the room's alert: sent (with what happens next) or refused. */
export function roomAlertResult({ ok, text }) {
  const status = document.getElementById("help-tell-status");
  const button = document.getElementById("help-tell-send");
  if (!status) return;
  status.dataset.state = ok ? "sent" : "refused";
  status.textContent = text;
  status.scrollIntoView({ block: "nearest" });
  if (ok) {
    document.getElementById("help-tell-message").value = "";
    button.textContent = "Sent";
    setTimeout(() => setRoomAlert(roomAlert), 30_000); // the label back; the server limits
  }
  button.disabled = false;
}

function sendRoomAlert() {
  if (!roomAlert) return;
  const status = document.getElementById("help-tell-status");
  const button = document.getElementById("help-tell-send");
  const message = document.getElementById("help-tell-message").value.trim();
  button.disabled = true;
  status.dataset.state = "sending";
  status.textContent = "Sending…";
  if (!roomAlert.send(message || null)) {
    roomAlertResult({ ok: false, text: "Not connected right now. Call a crisis line below, or try again in a moment." });
  }
}

async function open(trigger) {
  render(await chooseCountry());
  const alertRow = document.getElementById("help-alert-row");
  if (alertRow) alertRow.hidden = !loggedIn || inRoom;
  dialog.showModal();
  document.getElementById("help-country").focus();
  dialog.addEventListener("close", () => trigger && trigger.focus(), { once: true });
}

if (directory && dialog && typeof dialog.showModal === "function") {
  document.getElementById("help-tell-send")?.addEventListener("click", sendRoomAlert);
  document.getElementById("help-country").addEventListener("change", (event) => {
    render(event.target.value);
  });
  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-help-now]");
    if (!trigger) return;
    event.preventDefault();
    open(trigger);
  });
}
