// Fill the time-zone field with the browser's own zone when the person has not chosen one.
const field = document.querySelector("[data-detect-time-zone]");
if (field && (!field.value || field.value === "UTC")) {
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    /* keep UTC */
  }
}
