// The patient's waiting page: ask the server every few seconds whether the therapist has
// admitted us; once admitted, fetch a join link (issued only now) and go to the room.
const box = document.querySelector("[data-waiting-visit]");
const statusEl = document.getElementById("wait-status");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const POLL_MS = 3000;

function say(text) {
  if (statusEl && statusEl.textContent.trim() !== text) statusEl.textContent = text;
}

async function join(visitId) {
  const res = await fetch(`/api/visits/${encodeURIComponent(visitId)}/join`, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
    credentials: "same-origin",
  });
  if (res.status === 409) return false; // still waiting after all
  const data = await res.json();
  if (!res.ok) throw new Error(data?.error?.message || "could not join");
  say("You have been let in. Joining the session…");
  window.location.assign(data.join_path);
  return true;
}

async function poll(visitId) {
  try {
    const res = await fetch(`/api/visits/${encodeURIComponent(visitId)}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (res.status === 401) {
      say("You were logged out. Log in again to keep your place.");
      return;
    }
    const data = await res.json();
    if (!res.ok) throw new Error(data?.error?.message || "error");
    const status = data.visit.status;
    if (status === "admitted") {
      if (await join(visitId)) return;
    } else if (status === "ended") {
      say("This session has ended.");
      return;
    }
  } catch (err) {
    say("We could not reach Haven; trying again…");
  }
  setTimeout(() => poll(visitId), POLL_MS);
}

if (box) {
  const visitId = box.dataset.waitingVisit;
  if (statusEl?.dataset.status !== "ended") poll(visitId);
}
