// The public preview page of one environment: the scene, comfort controls and the soundscape.
// URL options (for tests, benchmarks and curious people): ?seats=8 ?avatars=3 ?still=1
// ?lowpower=1 ?autolowpower=off ?frame-budget=33

import { createScene, prefersReducedMotion, webglAvailable } from "./scene/scene.js";
import { paintFallback } from "./scene/fallback.js";
import { SoundscapePlayer } from "./scene/soundscape.js";

const AVATAR_COLOURS = ["#f2b8a2", "#a8d5c9", "#c7b8ea", "#f5d98e", "#9fc4e8", "#e8a9c4",
  "#b9dc9a", "#f0c29a", "#a9b8e0", "#d9c2a0", "#9ed6e0", "#e6b3a8", "#b4d1e8", "#d4c6ef",
  "#c9e0b0"];
const STILL_KEY = "haven.stillScene";
const LOW_POWER_KEY = "haven.lowPower";

const definition = JSON.parse(document.getElementById("environment-definition").textContent);
const params = new URLSearchParams(location.search);
const container = document.getElementById("scene");
const status = document.getElementById("scene-status");
const motionButton = document.getElementById("toggle-motion");
const lowPowerButton = document.getElementById("toggle-low-power");
const soundButton = document.getElementById("toggle-sound");
const volume = document.getElementById("sound-volume");
const vrButton = document.getElementById("enter-vr");

function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode: fine */
  }
}

function announce(message) {
  status.textContent = message;
}

function setPressed(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
}

const reducedQuery = typeof matchMedia === "function" ? matchMedia("(prefers-reduced-motion: reduce)") : null;
let still = params.has("still") ? params.get("still") === "1"
  : stored(STILL_KEY) !== null ? stored(STILL_KEY) === "1" : prefersReducedMotion();
let lowPower = params.has("lowpower") ? params.get("lowpower") === "1" : stored(LOW_POWER_KEY) === "1";
setPressed(motionButton, still);
setPressed(lowPowerButton, lowPower);

// The frame's backdrop (shown before the first frame, and behind the fallback) in the
// place's own colours: set through the CSSOM, which the CSP allows (no inline styles).
container.style.setProperty("--scene-sky", definition.sky.zenith);
container.style.setProperty("--scene-horizon", definition.sky.horizon);
container.style.setProperty("--scene-ground", definition.terrain.color);

let scene = null;
const has3d = webglAvailable();

if (has3d) {
  scene = createScene(container, definition, {
    seatCount: Math.min(16, Math.max(1, Number(params.get("seats")) || 6)),
    vrButton, // the scene shows it only where immersive VR is supported
    reducedMotion: still,
    lowPower,
    autoLowPower: params.get("autolowpower") !== "off" && stored(LOW_POWER_KEY) === null,
    frameBudgetMs: Number(params.get("frame-budget")) || 33,
    onXRChange(presenting) {
      announce(presenting ? "Entered VR. Take off the headset or press its menu button to leave."
        : "Left VR.");
    },
    onLowPowerChange(on, reason) {
      lowPower = on;
      setPressed(lowPowerButton, on);
      if (reason === "auto") {
        announce("This device drew the scene slowly, so low-power mode is now on. " +
          "Press Low-power mode to turn it off.");
      }
    },
  });
  const avatars = Math.min(Number(params.get("avatars")) || 0, scene.seatCount - 1);
  for (let i = 1; i <= avatars; i++) {
    scene.placeAvatar(i, { color: AVATAR_COLOURS[(i - 1) % AVATAR_COLOURS.length], label: `Guest ${i}` });
  }
  if (avatars) scene.setSeatHighlight(1, 0.8);
  window.havenScene = scene;
  document.documentElement.dataset.sceneState = "ready";
} else {
  const canvas = document.createElement("canvas");
  canvas.className = "scene-fallback-canvas";
  canvas.setAttribute("aria-hidden", "true");
  container.appendChild(canvas);
  paintFallback(canvas, definition);
  const note = document.createElement("p");
  note.className = "scene-fallback-note";
  note.textContent = "3D is not available in this browser, so this is a still picture of the place. The sounds still work.";
  container.appendChild(note);
  motionButton.disabled = true;
  lowPowerButton.disabled = true;
  document.documentElement.dataset.sceneState = "fallback";
  announce("Showing a still picture: 3D graphics are not available in this browser.");
}

motionButton.addEventListener("click", () => {
  still = !still;
  store(STILL_KEY, still ? "1" : "0");
  setPressed(motionButton, still);
  scene?.setReducedMotion(still);
  announce(still ? "The scene is still." : "The scene moves gently.");
});

reducedQuery?.addEventListener("change", (event) => {
  if (stored(STILL_KEY) !== null) return; // the person's own choice wins
  still = event.matches;
  setPressed(motionButton, still);
  scene?.setReducedMotion(still);
});

lowPowerButton.addEventListener("click", () => {
  lowPower = !lowPower;
  store(LOW_POWER_KEY, lowPower ? "1" : "0");
  setPressed(lowPowerButton, lowPower);
  scene?.setLowPower(lowPower);
  announce(lowPower ? "Low-power mode is on." : "Low-power mode is off.");
});

const player = new SoundscapePlayer(definition.soundscape_url, { volume: Number(volume.value) / 100 });
window.havenSoundscape = player;

soundButton.addEventListener("click", async () => {
  if (player.playing) {
    player.pause();
    setPressed(soundButton, false);
    announce("Sounds paused.");
    return;
  }
  setPressed(soundButton, true);
  announce("Loading the sounds of this place…");
  try {
    await player.play();
    announce("Sounds playing.");
  } catch {
    player.pause();
    setPressed(soundButton, false);
    announce("The sounds could not be played in this browser.");
  }
});

volume.addEventListener("input", () => {
  volume.setAttribute("aria-valuetext", `${volume.value} percent`);
  player.setVolume(Number(volume.value) / 100);
});

vrButton.addEventListener("click", async () => {
  try {
    await scene.enterVR();
  } catch (err) {
    announce(`Could not enter VR: ${err.message}`);
  }
});

window.addEventListener("pagehide", () => {
  player.dispose();
});
