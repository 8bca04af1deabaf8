// Links to copy (invite, calendar feed): select the whole text on focus, for easy copying.
for (const field of document.querySelectorAll("[data-select-on-focus]")) {
  field.addEventListener("focus", () => field.select());
}
