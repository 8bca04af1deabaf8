// The therapist's waiting room: refresh the list of waiting patients every few seconds and
// announce arrivals (the list region is rebuilt only when it changed, keeping focus stable).
const root = document.querySelector("[data-therapist-waiting-room]");
const list = document.getElementById("waiting-list");
const summary = document.getElementById("waiting-summary");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const POLL_MS = 4000;

function signature(visits) {
  return visits.map((v) => `${v.id}:${v.status}`).join(",");
}

function form(action, label, danger, confirmQuestion) {
  const f = document.createElement("form");
  f.method = "post";
  f.action = action;
  f.className = "inline";
  const hidden = document.createElement("input");
  hidden.type = "hidden";
  hidden.name = "csrf_token";
  hidden.value = csrf;
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = label;
  if (danger) button.className = "danger";
  if (confirmQuestion) {
    button.dataset.confirm = confirmQuestion;
    button.dataset.confirmYes = "End the session";
  }
  f.append(hidden, button);
  return f;
}

function render(visits) {
  list.replaceChildren(
    ...visits.map((v) => {
      const li = document.createElement("li");
      li.dataset.visit = v.id;
      const name = document.createElement("strong");
      name.textContent = v.patient.display_name;
      const time = document.createElement("time");
      time.dateTime = v.occurrence.starts_at;
      time.textContent = v.occurrence.local_label;
      li.append(name, ` ${v.status === "waiting" ? "is waiting" : "was admitted"} for `, time,
        ` (${v.occurrence.environment_name}).`);
      const actions = document.createElement("div");
      actions.className = "actions";
      const base = `/practice/visits/${encodeURIComponent(v.id)}`;
      if (v.status === "waiting") {
        actions.append(form(`${base}/admit`, `Admit ${v.patient.display_name} and join`));
      } else {
        actions.append(form(`${base}/host-link`, "Rejoin the session"));
      }
      actions.append(form(`${base}/end`, "End the session for everyone", true,
        `End the session with ${v.patient.display_name} for everyone? The room closes and cannot be reopened.`));
      li.append(actions);
      return li;
    }),
  );
  const waiting = visits.filter((v) => v.status === "waiting");
  summary.textContent = visits.length === 0
    ? "Nobody is waiting yet. This list updates by itself."
    : waiting.length
      ? `${waiting.map((v) => v.patient.display_name).join(", ")} ${waiting.length === 1 ? "is" : "are"} waiting.`
      : `${visits.length} ${visits.length === 1 ? "session is" : "sessions are"} in progress.`;
}

let last = null;

async function poll() {
  try {
    const res = await fetch("/api/waiting-room", { headers: { Accept: "application/json" },
      credentials: "same-origin" });
    if (res.ok) {
      const { visits } = await res.json();
      const sig = signature(visits);
      if (last !== null && sig !== last) render(visits);
      last = sig;
    }
  } catch {
    /* try again on the next tick */
  }
  setTimeout(poll, POLL_MS);
}

if (root && list && summary) {
  last = Array.from(list.querySelectorAll("li")).length ? null : "";
  poll();
}
