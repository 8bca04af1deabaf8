// The home page's dashboard: the next sessions (in the user's time zone, as the server
// formats them) and, for therapists, who is waiting. Without JS the links still work.
const root = document.querySelector("[data-practice-dashboard]");

function item(text, href, time) {
  const li = document.createElement("li");
  if (time) {
    const t = document.createElement("time");
    t.dateTime = time;
    t.textContent = text;
    li.append(t);
  } else {
    li.append(text);
  }
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = "Open";
    li.append(" · ", a);
  }
  return li;
}

async function load() {
  const res = await fetch("/api/practice/dashboard", { headers: { Accept: "application/json" },
    credentials: "same-origin" });
  if (!res.ok) return;
  const data = await res.json();
  const upcoming = root.querySelector("[data-upcoming]");
  const status = root.querySelector("[data-dashboard-status]");
  upcoming.replaceChildren(
    ...data.upcoming.map((o) => {
      const li = item(`${o.local_label} with ${o.with}`, null, o.starts_at);
      const a = document.createElement("a");
      if (o.visit && o.visit.status !== "ended" && !data.waiting) {
        a.href = `/practice/visits/${encodeURIComponent(o.visit.id)}/wait`;
        a.textContent = "Go to the waiting room";
      } else {
        a.href = "/practice";
        a.textContent = o.open_now && !data.waiting ? "Check in" : "Details";
      }
      li.append(" · ", a);
      return li;
    }),
  );
  if (!data.upcoming.length) upcoming.replaceChildren(item("No sessions are scheduled."));
  if (data.waiting) {
    const waiting = data.waiting.filter((v) => v.status === "waiting");
    status.textContent = waiting.length
      ? `${waiting.map((v) => v.patient.display_name).join(", ")} ${waiting.length === 1 ? "is" : "are"} in the waiting room.`
      : "Nobody is in the waiting room.";
  }
}

if (root) load();
