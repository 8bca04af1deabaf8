// Site-wide behaviour on every page (base.html), each a progressive enhancement: without
// JavaScript the navigation simply wraps, forms submit at once and links stay selectable.
//   - the navigation collapses behind a "Menu" button on narrow screens;
//   - <button data-copy="#field-id">: copies that field's text, and says so;
//   - <button data-confirm="Question?" data-confirm-yes="Label">: asks first, in a modal
//     <dialog>, before its form is submitted (cancel a session, sign and lock, end, ...).

const root = document.documentElement;
root.classList.add("js");

// --- the navigation --------------------------------------------------------------------------

const toggle = document.querySelector(".nav-toggle");
const navList = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
if (toggle && navList) {
  toggle.hidden = false;
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    navList.classList.toggle("open", open);
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      toggle.focus();
    }
  });
}

// --- one polite live region for short confirmations ("Copied") ----------------------------

let liveRegion = null;
export function sayPolitely(text) {
  if (!liveRegion) {
    liveRegion = document.createElement("p");
    liveRegion.className = "visually-hidden";
    liveRegion.setAttribute("role", "status");
    liveRegion.setAttribute("aria-live", "polite");
    document.body.append(liveRegion);
  }
  liveRegion.textContent = "";
  setTimeout(() => { liveRegion.textContent = text; }, 50);
}

// --- copy buttons ------------------------------------------------------------------------------

async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard permission (or an older browser): select the text and use the old command.
    field?.focus();
    field?.select?.();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = document.querySelector(button.dataset.copy);
  if (!field) continue;
  button.hidden = false;
  const label = button.textContent;
  button.addEventListener("click", async () => {
    const ok = await copyText(field.value ?? field.textContent, field);
    button.textContent = ok ? "Copied" : "Select and copy it yourself";
    sayPolitely(ok ? "Link copied to the clipboard." : "Could not copy: the link is selected, copy it yourself.");
    setTimeout(() => { button.textContent = label; }, 2500);
  });
}

// --- confirmation before acting ----------------------------------------------------------------

let dialog = null;

function confirmDialog() {
  if (dialog) return dialog;
  dialog = document.createElement("dialog");
  dialog.className = "confirm-dialog";
  dialog.setAttribute("aria-labelledby", "confirm-dialog-text");
  dialog.innerHTML = `<form method="dialog">
      <p id="confirm-dialog-text"></p>
      <div class="actions">
        <button value="yes" class="danger" data-confirm-yes></button>
        <button value="no" class="button secondary" autofocus>Go back</button>
      </div>
    </form>`;
  document.body.append(dialog);
  return dialog;
}

/** Ask `question` in a modal dialog; resolves true only if the person chose `yes`. */
export function askFirst(question, yes = "Yes", no = "Go back") {
  const d = confirmDialog();
  d.querySelector("#confirm-dialog-text").textContent = question;
  d.querySelector("[data-confirm-yes]").textContent = yes;
  d.querySelector("button[value=no]").textContent = no;
  d.returnValue = "";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "yes"), { once: true });
    d.showModal();
  });
}

document.addEventListener("submit", async (event) => {
  const submitter = event.submitter;
  const asking = submitter?.dataset.confirm ? submitter : event.target.dataset?.confirm ? event.target : null;
  if (!asking || event.target.dataset.confirmed === "1") return;
  event.preventDefault();
  const source = asking.dataset;
  if (await askFirst(source.confirm, source.confirmYes || "Yes", source.confirmNo || "Go back")) {
    const form = event.target;
    form.dataset.confirmed = "1";
    form.requestSubmit(submitter || undefined);
  }
});
