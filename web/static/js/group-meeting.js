// A group meeting's page. For a member (the lobby): ask the server every few seconds whether
// a facilitator has opened the meeting and let us in; once admitted, fetch a join link
// (issued only now, under our pseudonym) and go to the room. For a facilitator: keep the
// lobby list fresh, with an Admit button per person.
const box = document.getElementById("meeting");
const statusEl = document.getElementById("meeting-status");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const POLL_MS = 3000;

function say(text) {
  if (statusEl && statusEl.textContent.trim() !== text) statusEl.textContent = text;
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Accept: "application/json", "X-CSRF-Token": csrf,
               ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  return { status: res.status, data };
}

function item(text, extra) {
  const li = document.createElement("li");
  const strong = document.createElement("strong");
  strong.textContent = text;
  li.append(strong);
  if (extra) li.append(" ", extra);
  return li;
}

function helpSpan(text) {
  const span = document.createElement("span");
  span.className = "help";
  span.textContent = text;
  return span;
}

function renderPeople(base, meeting) {
  const waiting = document.getElementById("waiting");
  const admitted = document.getElementById("admitted");
  if (!waiting || !admitted) return;
  const w = meeting.people.filter((p) => p.status === "waiting");
  const a = meeting.people.filter((p) => p.status === "admitted");
  const focused = document.activeElement?.dataset?.admit;
  waiting.replaceChildren(...(w.length ? w.map((p) => {
    const li = item(p.pseudonym, helpSpan("waiting"));
    li.dataset.member = p.member_id;
    if (meeting.status === "open") {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `Admit ${p.pseudonym}`;
      button.dataset.admit = p.member_id;
      button.addEventListener("click", async () => {
        button.disabled = true;
        const res = await api("POST", `${base}/admit`, { member_id: p.member_id });
        if (res.status !== 200) say(res.data?.error?.message || "Could not admit.");
        refresh(base);
      });
      li.append(" ", button);
    }
    return li;
  }) : [Object.assign(document.createElement("li"), { className: "empty", textContent: "Nobody is waiting." })]));
  admitted.replaceChildren(...(a.length ? a.map((p) => item(p.pseudonym,
    helpSpan(p.role !== "member" ? "facilitator" : (p.joined_at ? "joined the room" : "not in the room yet"))))
    : [Object.assign(document.createElement("li"), { className: "empty", textContent: "Nobody yet." })]));
  if (focused) document.querySelector(`[data-admit="${focused}"]`)?.focus();
  const heading = document.getElementById("in-h");
  if (heading) heading.textContent = `Admitted (${meeting.admitted_count} of ${meeting.capacity})`;
}

async function refresh(base) {
  const res = await api("GET", base);
  if (res.status === 401) { say("You were logged out. Log in again to keep your place."); return null; }
  if (res.status !== 200) { say(res.data?.error?.message || "We could not reach Haven; trying again…"); return null; }
  const meeting = res.data.meeting;
  say(meeting.message);
  if (box.dataset.role === "facilitator") renderPeople(base, meeting);
  return meeting;
}

async function poll(base) {
  try {
    const meeting = await refresh(base);
    if (meeting && box.dataset.role === "member") {
      if (meeting.status === "ended" || meeting.status === "cancelled") return;
      if (meeting.status === "open" && meeting.me.status === "admitted") {
        const res = await api("POST", `${base}/join`);
        if (res.status === 200) {
          say("You have been let in. Joining the meeting…");
          window.location.assign(res.data.join_path);
          return;
        }
        if (res.status !== 409) say(res.data?.error?.message || "Could not join.");
        if (res.data?.error?.code === "conduct_required") return;
      }
    }
    if (meeting && meeting.status === "ended") return;
  } catch {
    say("We could not reach Haven; trying again…");
  }
  setTimeout(() => poll(base), POLL_MS);
}

if (box) {
  const base = `/api/groups/${encodeURIComponent(box.dataset.group)}/meetings/${encodeURIComponent(box.dataset.key)}`;
  if (!["ended", "cancelled"].includes(box.dataset.status)) poll(base);
}
