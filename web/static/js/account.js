// The account page: offer this device's time zone in one click (the server validates it).
const button = document.querySelector("[data-use-browser-zone]");
const field = document.getElementById("time_zone");
let zone = "";
try {
  zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
} catch {
  /* no Intl: the button stays hidden */
}
if (button && field && zone && zone !== field.value) {
  button.textContent = `Use this device's zone (${zone})`;
  button.hidden = false;
  button.addEventListener("click", () => {
    field.value = zone;
    field.focus();
  });
}
