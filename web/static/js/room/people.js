// The people drawer's list: one <li data-participant> per person (present even while the
// drawer is closed), with their colour, name, role and state badges, a volume slider for each
// other voice, and whatever per-person actions the caller's role allows (host today; the
// facilitator's lower-hand / mute / remove / ban in group meetings plug in via actionsFor).

function badge(text, kind = "", icon = "") {
  const b = document.createElement("span");
  b.className = `badge ${kind}`.trim();
  if (icon) {
    const i = document.createElement("span");
    i.className = `icon ${icon}`;
    i.setAttribute("aria-hidden", "true");
    b.append(i);
  }
  b.append(text);
  return b;
}

/**
 * @param {HTMLUListElement} list
 * @param {Array<object>} people  {participant_id, display_name, color, room_role, muted, hand, self}
 * @param {object} hooks
 *   volumeOf(p) -> 0..150; onVolume(p, value); actionsFor(p) -> [{label, danger?, more?, run}]
 *   (`more`: shown behind a "More for <name>" disclosure)
 */
const openMore = new Set(); // whose "More for…" stays open across redraws

export function renderPeople(list, people, { volumeOf, onVolume, actionsFor }) {
  const focused = document.activeElement;
  const focusKey = list.contains(focused) ? focused.dataset.key : null;
  list.replaceChildren();
  for (const p of people) {
    const li = document.createElement("li");
    li.dataset.participant = p.participant_id;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    dot.style.setProperty("--avatar", p.color);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = p.display_name;
    const badges = document.createElement("span");
    badges.className = "badges";
    if (p.room_role === "host") badges.append(badge("host"));
    if (p.hand) badges.append(badge("hand raised", "hand", "i-hand"));
    if (p.muted) badges.append(badge("muted", "muted", "i-mic-off"));
    if (p.steppedOut) badges.append(badge("stepped out", "away")); // a side room (no reason shown)
    const speaking = document.createElement("span");
    speaking.className = "visually-hidden speaking-label";
    li.append(dot, name, badges, speaking);
    if (!p.self) {
      const row = document.createElement("label");
      row.className = "volume";
      const text = document.createElement("span");
      text.textContent = "Volume";
      const volume = document.createElement("input");
      volume.type = "range";
      volume.min = "0";
      volume.max = "150";
      volume.value = String(volumeOf(p));
      volume.dataset.key = `vol:${p.participant_id}`;
      volume.setAttribute("aria-label", `Volume of ${p.display_name}`);
      volume.addEventListener("input", () => onVolume(p, Number(volume.value)));
      row.append(text, volume);
      li.append(row);
    }
    const actions = actionsFor(p);
    const actionBox = (list) => {
      const box = document.createElement("div");
      box.className = "person-actions";
      for (const a of list) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = a.label;
        b.dataset.key = `${a.id}:${p.participant_id}`;
        if (a.danger) b.className = "danger";
        b.addEventListener("click", a.run);
        box.append(b);
      }
      return box;
    };
    const first = actions.filter((a) => !a.more);
    const more = actions.filter((a) => a.more); // weightier actions, one step away
    if (first.length) li.append(actionBox(first));
    if (more.length) {
      const details = document.createElement("details");
      details.className = "person-more";
      details.open = openMore.has(p.participant_id);
      details.addEventListener("toggle", () => {
        if (details.open) openMore.add(p.participant_id);
        else openMore.delete(p.participant_id);
      });
      const summary = document.createElement("summary");
      summary.textContent = `More for ${p.display_name}`;
      details.append(summary, actionBox(more));
      li.append(details);
    }
    list.append(li);
  }
  if (focusKey) list.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
}
