// Drawers (side panels on a laptop, bottom sheets on a phone): one open at a time, focus moves
// into the drawer and stays there while it is open, Esc or the close button shuts it, and focus
// returns to the control that opened it. Each opener carries aria-expanded.

const FOCUSABLE = 'button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export class Drawers {
  constructor() {
    this.drawers = new Map(); // id -> {el, opener}
    this.openId = null;
    this.returnFocus = null;
    this.onChange = () => {};
    document.addEventListener("keydown", (event) => this.#onKey(event), true);
  }

  /** Register drawer `el`; `opener` (optional) is the dock button that toggles it. */
  add(el, opener = null) {
    this.drawers.set(el.id, { el, opener });
    el.querySelector(".drawer-close")?.addEventListener("click", () => this.close());
    opener?.addEventListener("click", () => this.toggle(el.id, opener));
  }

  get current() {
    return this.openId;
  }

  toggle(id, from = document.activeElement) {
    if (this.openId === id) this.close();
    else this.open(id, from);
  }

  open(id, from = document.activeElement) {
    const entry = this.drawers.get(id);
    if (!entry) return;
    if (this.openId && this.openId !== id) this.close({ restoreFocus: false });
    else if (!this.openId) this.returnFocus = from instanceof HTMLElement ? from : null;
    this.openId = id;
    entry.el.hidden = false;
    entry.opener?.setAttribute("aria-expanded", "true");
    const first = entry.el.querySelector(".drawer-body " + FOCUSABLE) || entry.el.querySelector(FOCUSABLE);
    (first || entry.el).focus({ preventScroll: true });
    this.onChange(id);
  }

  close({ restoreFocus = true } = {}) {
    const entry = this.drawers.get(this.openId);
    if (!entry) return;
    entry.el.hidden = true;
    entry.opener?.setAttribute("aria-expanded", "false");
    this.openId = null;
    if (restoreFocus && this.returnFocus?.isConnected) {
      const target = this.returnFocus.offsetParent !== null ? this.returnFocus : document.getElementById("more-button");
      target?.focus({ preventScroll: true });
    }
    if (restoreFocus) this.returnFocus = null;
    this.onChange(null);
  }

  #onKey(event) {
    if (!this.openId) return;
    const { el } = this.drawers.get(this.openId);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.close();
      return;
    }
    if (event.key !== "Tab") return;
    const items = [...el.querySelectorAll(FOCUSABLE)].filter((n) => n.offsetParent !== null || n === document.activeElement);
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (!el.contains(document.activeElement)) {
      event.preventDefault();
      first.focus();
    } else if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }
}
