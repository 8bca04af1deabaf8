// Brief status messages over the scene, mirrored in ARIA live regions: polite for ordinary news
// ("Ana joined"), assertive for what a person must hear at once ("The host muted you").
// The visual toasts are aria-hidden so screen readers hear each message once.

const SHOW_MS = 4000;
const MAX_VISIBLE = 3;

export class Toasts {
  /**
   * @param {HTMLElement} container  where visual toasts go (aria-hidden)
   * @param {HTMLElement} polite     an aria-live="polite" region
   * @param {HTMLElement} assertive  an aria-live="assertive" region
   */
  constructor(container, polite, assertive) {
    this.container = container;
    this.polite = polite;
    this.assertive = assertive;
    this.history = []; // [{text, assertive, at}] for tests and diagnostics
  }

  show(text, { assertive = false } = {}) {
    if (!text) return;
    this.history.push({ text, assertive, at: Date.now() });
    if (this.history.length > 50) this.history.shift();
    const region = assertive ? this.assertive : this.polite;
    // Clear first so the same sentence twice is announced twice. A timer, not a frame callback:
    // on a slow device a 3D frame can take seconds, and the announcement must not wait for it.
    region.textContent = "";
    setTimeout(() => { region.textContent = text; }, 50);
    const toast = document.createElement("div");
    toast.className = assertive ? "toast assertive" : "toast";
    toast.textContent = text;
    this.container.append(toast);
    while (this.container.children.length > MAX_VISIBLE) this.container.firstElementChild.remove();
    setTimeout(() => {
      toast.classList.add("leaving");
      setTimeout(() => toast.remove(), 320);
    }, SHOW_MS);
  }
}
