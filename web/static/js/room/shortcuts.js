// The room's keyboard shortcuts: one table drives both the key handling and the list shown in
// "Help and shortcuts". Single keys without modifiers, ignored while typing in a field.

export const SHORTCUTS = [
  { key: "m", label: "M", action: "mute", text: "Mute or unmute your microphone" },
  { key: "h", label: "H", action: "hand", text: "Raise or lower your hand (group meetings)", when: "hand" },
  { key: "p", label: "P", action: "people", text: "Show who is here" },
  { key: "l", label: "L", action: "place", text: "Choose the place" },
  { key: "k", label: "K", action: "security", text: "Show the security code" },
  { key: "s", label: "S", action: "settings", text: "Sound and comfort settings" },
  { key: "?", label: "?", action: "help", text: "This help" },
  { key: "Escape", label: "Esc", action: "close", text: "Close the open panel" },
];

/** Fill a <dl> with the shortcuts that apply (`available(action)` says which). */
export function renderShortcuts(dl, available = () => true) {
  dl.replaceChildren();
  for (const s of SHORTCUTS) {
    if (s.when && !available(s.when)) continue;
    const dt = document.createElement("dt");
    const kbd = document.createElement("kbd");
    kbd.textContent = s.label;
    dt.append(kbd);
    const dd = document.createElement("dd");
    dd.textContent = s.text;
    dl.append(dt, dd);
  }
}

/** Call `handlers[action](event)` for a shortcut key; returns true if one ran. */
export function handleShortcut(event, handlers) {
  if (event.ctrlKey || event.metaKey || event.altKey) return false;
  const tag = event.target?.tagName;
  if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || event.target?.isContentEditable) return false;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  const s = SHORTCUTS.find((x) => x.key === key && x.action !== "close");
  if (!s || !handlers[s.action]) return false;
  if (handlers[s.action](event) === false) return false;
  event.preventDefault();
  return true;
}
